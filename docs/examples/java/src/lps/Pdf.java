package lps;

import java.awt.color.ColorSpace;
import java.awt.color.ICC_Profile;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.Deflater;

/**
 * A one-page PDF/A-1b file written by hand (ISO 19005-1), the rendering of a CDA document that goes next to
 * IHE_XDM.ZIP (ECO.2.1.1, ECO.2.1.5):
 *
 * <ul>
 * <li>PDF 1.4 base, {@code %PDF-1.4} then a binary comment (§6.1.2), a classic cross-reference table, no object
 * stream (§6.1.4), a trailer {@code /ID} and no encryption (§6.1.3);</li>
 * <li>an unfiltered XMP packet with {@code pdfaid:part=1}, {@code pdfaid:conformance=B} (§6.7.2, §6.7.11);</li>
 * <li>a {@code GTS_PDFA1} OutputIntent with the JDK's sRGB ICC profile, a version 2 profile (§6.2.2);</li>
 * <li>one simple TrueType font, embedded whole ({@code FontFile2}, §6.3.4), in {@code WinAnsiEncoding} so that
 * text extractors (pdftotext) read the text back.</li>
 * </ul>
 *
 * The font is DejaVu Sans (Debian package fonts-dejavu-core); {@code -Dlps.pdf.font=FILE} names another TrueType
 * file. Only characters of Windows-1252 are written (the French text of a CDA header fits).
 */
final class Pdf {
    /** The TrueType font embedded by default (Debian: fonts-dejavu-core). */
    static final Path DEFAULT_FONT = Path.of("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    private static final Charset WIN_ANSI = Charset.forName("windows-1252");
    private static final int FIRST = 32;
    private static final int LAST = 255;

    private Pdf() {
    }

    /** The TrueType file to embed: {@code -Dlps.pdf.font}, else DejaVu Sans. */
    static Path fontFile() {
        String chosen = System.getProperty("lps.pdf.font");
        return chosen == null || chosen.isBlank() ? DEFAULT_FONT : Path.of(chosen);
    }

    /**
     * The PDF/A-1b file: {@code title} in large type, then {@code lines}.
     *
     * @throws LpsException CONFIG when the font file cannot be read or is not a TrueType font
     */
    static byte[] render(String title, List<String> lines, ZonedDateTime now) throws LpsException {
        Path file = fontFile();
        byte[] font;
        try {
            font = Files.readAllBytes(file);
        } catch (IOException ex) {
            throw new LpsException(LpsException.Kind.CONFIG, "police TrueType illisible : " + file
                + " (installez fonts-dejavu-core ou donnez -Dlps.pdf.font=FICHIER.ttf) : " + ex.getMessage());
        }
        TrueType metrics = TrueType.read(font, file);
        String date = now.withZoneSameInstant(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyyMMddHHmmss"));
        String iso = now.withZoneSameInstant(ZoneOffset.UTC).format(DateTimeFormatter.ISO_OFFSET_DATE_TIME);

        StringBuilder text = new StringBuilder("BT\n/F1 16 Tf\n50 780 Td\n(").append(escape(title)).append(") Tj\n");
        text.append("/F1 11 Tf\n0 -30 Td\n");
        for (String line : lines) {
            text.append('(').append(escape(line)).append(") Tj\n0 -16 Td\n");
        }
        text.append("ET\n");

        Writer w = new Writer();
        w.object(1, "<</Type/Catalog/Pages 2 0 R/Metadata 3 0 R/OutputIntents[<</Type/OutputIntent/S/GTS_PDFA1"
            + "/OutputConditionIdentifier(sRGB IEC61966-2.1)/Info(sRGB IEC61966-2.1)/DestOutputProfile 4 0 R>>]>>");
        w.object(2, "<</Type/Pages/Kids[5 0 R]/Count 1>>");
        w.stream(3, "/Type/Metadata/Subtype/XML", xmp(title, iso).getBytes(StandardCharsets.UTF_8), false);
        w.stream(4, "/N 3", ICC_Profile.getInstance(ColorSpace.CS_sRGB).getData(), true);
        w.object(5, "<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<</Font<</F1 6 0 R>>>>/Contents 7 0 R>>");
        w.object(6, "<</Type/Font/Subtype/TrueType/BaseFont/" + metrics.name + "/FirstChar " + FIRST + "/LastChar " + LAST
            + "/Widths[" + metrics.widths() + "]/Encoding/WinAnsiEncoding/FontDescriptor 8 0 R>>");
        w.stream(7, "", text.toString().getBytes(WIN_ANSI), true);
        w.object(8, "<</Type/FontDescriptor/FontName/" + metrics.name + "/Flags 32/FontBBox[" + metrics.bbox
            + "]/ItalicAngle 0/Ascent " + metrics.ascent + "/Descent " + metrics.descent + "/CapHeight " + metrics.ascent
            + "/StemV 80/FontFile2 9 0 R>>");
        w.stream(9, "/Length1 " + font.length, font, true);
        w.object(10, "<</Title(" + escape(title) + ")/Producer(LPS Java d'exemple)/CreationDate(D:" + date + "Z)>>");
        return w.finish(10, Documents.randomHex(16));
    }

    /** A PDF literal string in Windows-1252: backslash, parentheses escaped; other characters replaced by '?'. */
    static String escape(String s) {
        StringBuilder out = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c == '\\' || c == '(' || c == ')') {
                out.append('\\');
            }
            out.append(WIN_ANSI.newEncoder().canEncode(c) && c >= FIRST ? c : '?');
        }
        return out.toString();
    }

    private static String xmp(String title, String iso) {
        String x = "<?xpacket begin=\"\uFEFF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
            + "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
            + "<rdf:Description rdf:about=\"\" xmlns:pdfaid=\"http://www.aiim.org/pdfa/ns/id/\">"
            + "<pdfaid:part>1</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance></rdf:Description>\n"
            + "<rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">"
            + "<dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">" + Documents.xml(title) + "</rdf:li></rdf:Alt></dc:title>"
            + "<dc:format>application/pdf</dc:format></rdf:Description>\n"
            + "<rdf:Description rdf:about=\"\" xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\">"
            + "<xmp:CreateDate>" + iso + "</xmp:CreateDate></rdf:Description>\n"
            + "<rdf:Description rdf:about=\"\" xmlns:pdf=\"http://ns.adobe.com/pdf/1.3/\">"
            + "<pdf:Producer>LPS Java d'exemple</pdf:Producer></rdf:Description>\n"
            + "</rdf:RDF></x:xmpmeta>\n";
        return x + " ".repeat(512) + "\n<?xpacket end=\"w\"?>";
    }

    /** Objects in order, their offsets, the cross-reference table and the trailer. */
    private static final class Writer {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();
        private final List<Integer> offsets = new ArrayList<>();

        Writer() {
            ascii("%PDF-1.4\n");
            out.write(new byte[] {'%', (byte) 0xE2, (byte) 0xE3, (byte) 0xCF, (byte) 0xD3, '\n'}, 0, 6);
        }

        private void ascii(String s) {
            byte[] b = s.getBytes(StandardCharsets.ISO_8859_1);
            out.write(b, 0, b.length);
        }

        void object(int number, String body) {
            offsets.add(out.size());
            ascii(number + " 0 obj\n" + body + "\nendobj\n");
        }

        void stream(int number, String dict, byte[] data, boolean deflate) {
            byte[] body = deflate ? deflate(data) : data;
            offsets.add(out.size());
            ascii(number + " 0 obj\n<<" + dict + (deflate ? "/Filter/FlateDecode" : "") + "/Length " + body.length
                + ">>\nstream\n");
            out.write(body, 0, body.length);
            ascii("\nendstream\nendobj\n");
        }

        byte[] finish(int info, String id) {
            int xref = out.size();
            StringBuilder sb = new StringBuilder("xref\n0 " + (offsets.size() + 1) + "\n0000000000 65535 f \n");
            for (int offset : offsets) {
                sb.append(String.format("%010d 00000 n \n", offset));
            }
            sb.append("trailer\n<</Size ").append(offsets.size() + 1).append("/Root 1 0 R/Info ").append(info)
                .append(" 0 R/ID[<").append(id).append("><").append(id).append(">]>>\nstartxref\n").append(xref)
                .append("\n%%EOF\n");
            ascii(sb.toString());
            return out.toByteArray();
        }

        private static byte[] deflate(byte[] data) {
            Deflater d = new Deflater(Deflater.BEST_COMPRESSION);
            d.setInput(data);
            d.finish();
            ByteArrayOutputStream o = new ByteArrayOutputStream();
            byte[] buf = new byte[65536];
            while (!d.finished()) {
                int n = d.deflate(buf);
                o.write(buf, 0, n);
            }
            d.end();
            return o.toByteArray();
        }
    }

    /**
     * What the font dictionary needs from a TrueType file (Apple TrueType Reference / OpenType spec): the
     * PostScript-safe name, the glyph widths of Windows-1252 characters 32..255 in 1/1000 em (tables head,
     * hhea, hmtx, cmap format 4), the bounding box, ascent and descent.
     */
    private record TrueType(String name, int[] advance, String bbox, int ascent, int descent) {
        String widths() {
            StringBuilder sb = new StringBuilder();
            for (int w : advance) {
                sb.append(sb.length() == 0 ? "" : " ").append(w);
            }
            return sb.toString();
        }

        static TrueType read(byte[] font, Path file) throws LpsException {
            try {
                ByteBuffer b = ByteBuffer.wrap(font);
                int tables = b.getShort(4) & 0xFFFF;
                int head = -1;
                int hhea = -1;
                int hmtx = -1;
                int cmap = -1;
                for (int i = 0; i < tables; i++) {
                    int at = 12 + 16 * i;
                    String tag = new String(font, at, 4, StandardCharsets.ISO_8859_1);
                    int offset = b.getInt(at + 8);
                    switch (tag) {
                        case "head" -> head = offset;
                        case "hhea" -> hhea = offset;
                        case "hmtx" -> hmtx = offset;
                        case "cmap" -> cmap = offset;
                        default -> {
                            // not needed
                        }
                    }
                }
                if (head < 0 || hhea < 0 || hmtx < 0 || cmap < 0) {
                    throw new IllegalArgumentException("missing head/hhea/hmtx/cmap table");
                }
                double em = b.getShort(head + 18) & 0xFFFF;
                String box = scale(b.getShort(head + 36), em) + " " + scale(b.getShort(head + 38), em) + " "
                    + scale(b.getShort(head + 40), em) + " " + scale(b.getShort(head + 42), em);
                int ascent = scale(b.getShort(hhea + 4), em);
                int descent = scale(b.getShort(hhea + 6), em);
                int metrics = b.getShort(hhea + 34) & 0xFFFF;
                int segments = unicodeSegments(b, cmap);
                int[] widths = new int[LAST - FIRST + 1];
                for (int code = FIRST; code <= LAST; code++) {
                    String ch = new String(new byte[] {(byte) code}, WIN_ANSI);
                    int glyph = glyph(b, segments, ch.charAt(0));
                    int index = Math.min(glyph, metrics - 1);
                    widths[code - FIRST] = scale(b.getShort(hmtx + 4 * index), em);
                }
                String base = file.getFileName().toString().replaceAll("\\.[A-Za-z]+$", "").replaceAll("[^A-Za-z0-9-]", "");
                return new TrueType(base.isEmpty() ? "Font" : base, widths, box, ascent, descent);
            } catch (IndexOutOfBoundsException | IllegalArgumentException ex) {
                throw new LpsException(LpsException.Kind.CONFIG, file + " n'est pas une police TrueType lisible : " + ex);
            }
        }

        private static int scale(int units, double em) {
            return (int) Math.round(units * 1000 / em);
        }

        /** The offset of the cmap subtable (3,1) in format 4 (Windows, Unicode BMP). */
        private static int unicodeSegments(ByteBuffer b, int cmap) {
            int count = b.getShort(cmap + 2) & 0xFFFF;
            for (int i = 0; i < count; i++) {
                int at = cmap + 4 + 8 * i;
                if (b.getShort(at) == 3 && b.getShort(at + 2) == 1) {
                    int sub = cmap + b.getInt(at + 4);
                    if (b.getShort(sub) == 4) {
                        return sub;
                    }
                }
            }
            throw new IllegalArgumentException("no Windows Unicode cmap (3,1) in format 4");
        }

        /** The glyph of {@code c} in a format 4 subtable (0, the missing glyph, when absent). */
        private static int glyph(ByteBuffer b, int sub, char c) {
            int segX2 = b.getShort(sub + 6) & 0xFFFF;
            int ends = sub + 14;
            int starts = ends + segX2 + 2;
            int deltas = starts + segX2;
            int ranges = deltas + segX2;
            for (int i = 0; i < segX2 / 2; i++) {
                int end = b.getShort(ends + 2 * i) & 0xFFFF;
                if (c > end) {
                    continue;
                }
                int start = b.getShort(starts + 2 * i) & 0xFFFF;
                if (c < start) {
                    return 0;
                }
                int delta = b.getShort(deltas + 2 * i);
                int range = b.getShort(ranges + 2 * i) & 0xFFFF;
                if (range == 0) {
                    return (c + delta) & 0xFFFF;
                }
                int g = b.getShort(ranges + 2 * i + range + 2 * (c - start)) & 0xFFFF;
                return g == 0 ? 0 : (g + delta) & 0xFFFF;
            }
            return 0;
        }
    }
}
