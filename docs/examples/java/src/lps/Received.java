package lps;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.parsers.ParserConfigurationException;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;
import org.xml.sax.SAXException;

/**
 * What the LPS understands of a message it read (ECO.2.1.2, ECO.3.1.1 to ECO.3.1.3): the patient of the
 * documents (the patientId of IHE_XDM/SUBSETnn/METADATA.XML, the name of sourcePatientInfo PID-5 or of the CDA),
 * the CDA codes (ClinicalDocument/code/@code), the subject without its XDM/1.0/DDM+ prefix, and whether a patient
 * (an address of patient.mssante.fr) or a professional wrote it.
 *
 * <p>Untrusted input: XML is parsed without DTD nor external entity (secure processing), the archive is read
 * with a bound on the number of entries and on the size of each, the MIME walk is bounded in depth.
 */
final class Received {
    static final String XDM_PREFIX = "XDM/1.0/DDM+";
    static final String PATIENT_DOMAIN = "patient.mssante.fr";
    private static final int MAX_ENTRIES = 200;
    private static final int MAX_ENTRY_BYTES = 20 * 1024 * 1024;
    private static final int MAX_DEPTH = 5;
    private static final String DOC_PATIENT = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427";
    private static final String SET_PATIENT = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446";

    private Received() {
    }

    /** The {@code understood} entry of a read step's acknowledgement for this message. */
    static Map<String, Object> understand(byte[] raw) {
        Map<String, String> h = Mime.headers(raw);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("message_id", h.getOrDefault("message-id", ""));
        String subject = Mime.decodeWords(h.getOrDefault("subject", ""));
        out.put("subject_shown", subject.startsWith(XDM_PREFIX) ? subject.substring(XDM_PREFIX.length()).trim() : subject);
        String from = Mime.address(h.getOrDefault("from", "")).toLowerCase(Locale.ROOT);
        out.put("sender_kind", from.endsWith("@" + PATIENT_DOMAIN) ? "patient" : from.contains("@") ? "professional" : "unknown");
        List<Object> codes = new ArrayList<>();
        out.put("documents", codes);
        byte[] zip = attachment(raw, 0);
        if (zip == null) {
            return out;
        }
        try {
            Map<String, byte[]> files = unzip(zip);
            for (Map.Entry<String, byte[]> e : files.entrySet()) {
                if (!e.getKey().toUpperCase(Locale.ROOT).endsWith("METADATA.XML")) {
                    continue;
                }
                String dir = e.getKey().substring(0, e.getKey().lastIndexOf('/') + 1);
                metadata(parse(e.getValue()), dir, files, out, codes);
            }
        } catch (IOException | SAXException | ParserConfigurationException ex) {
            out.put("patient", null); // unreadable archive: nothing attached to a patient
            System.err.println("  archive IHE_XDM.ZIP illisible : " + ex.getMessage());
        }
        return out;
    }

    private static void metadata(Document meta, String dir, Map<String, byte[]> files, Map<String, Object> out,
                                 List<Object> codes) throws IOException, SAXException, ParserConfigurationException {
        Map<String, Object> patient = new LinkedHashMap<>();
        NodeList ids = meta.getElementsByTagNameNS("*", "ExternalIdentifier");
        for (int i = 0; i < ids.getLength(); i++) {
            Element id = (Element) ids.item(i);
            String scheme = id.getAttribute("identificationScheme");
            if (scheme.equals(DOC_PATIENT) || scheme.equals(SET_PATIENT)) {
                patient.put("ins", id.getAttribute("value").split("\\^", 2)[0]); // CX: INS^^^&OID&ISO^NH
            }
        }
        NodeList objects = meta.getElementsByTagNameNS("*", "ExtrinsicObject");
        for (int i = 0; i < objects.getLength(); i++) {
            Element object = (Element) objects.item(i);
            for (String value : slot(object, "sourcePatientInfo")) {
                if (value.startsWith("PID-5|")) { // PID-5: NOM^Prénom^...
                    String[] name = value.substring(6).split("\\^");
                    patient.putIfAbsent("family_name", name[0]);
                    if (name.length > 1) {
                        patient.putIfAbsent("given_name", name[1]);
                    }
                }
            }
            for (String uri : slot(object, "URI")) {
                byte[] cda = files.get(dir + uri);
                if (cda != null) {
                    cda(parse(cda), patient, codes);
                }
            }
        }
        if (!patient.isEmpty()) {
            out.put("patient", patient);
        }
    }

    /** The document code, and the patient's names when METADATA.XML did not give them. */
    private static void cda(Document doc, Map<String, Object> patient, List<Object> codes) {
        Element root = doc.getDocumentElement();
        for (Node n = root.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && "code".equals(e.getLocalName()) && !e.getAttribute("code").isEmpty()) {
                codes.add(e.getAttribute("code"));
                break;
            }
        }
        NodeList families = root.getElementsByTagNameNS("*", "family");
        if (families.getLength() > 0 && !patient.containsKey("family_name")) {
            patient.put("family_name", families.item(0).getTextContent().trim());
        }
        NodeList given = root.getElementsByTagNameNS("*", "given");
        if (given.getLength() > 0 && !patient.containsKey("given_name")) {
            patient.put("given_name", given.item(0).getTextContent().trim());
        }
    }

    private static List<String> slot(Element object, String name) {
        List<String> values = new ArrayList<>();
        NodeList slots = object.getElementsByTagNameNS("*", "Slot");
        for (int i = 0; i < slots.getLength(); i++) {
            Element s = (Element) slots.item(i);
            if (name.equals(s.getAttribute("name"))) {
                NodeList v = s.getElementsByTagNameNS("*", "Value");
                for (int j = 0; j < v.getLength(); j++) {
                    values.add(v.item(j).getTextContent().trim());
                }
            }
        }
        return values;
    }

    /** An XML parser without DTD, external entities nor XInclude (XXE, billion laughs). */
    static Document parse(byte[] xml) throws IOException, SAXException, ParserConfigurationException {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        f.setFeature("http://xml.org/sax/features/external-general-entities", false);
        f.setFeature("http://xml.org/sax/features/external-parameter-entities", false);
        f.setAttribute(XMLConstants.ACCESS_EXTERNAL_DTD, "");
        f.setAttribute(XMLConstants.ACCESS_EXTERNAL_SCHEMA, "");
        f.setXIncludeAware(false);
        f.setExpandEntityReferences(false);
        DocumentBuilder b = f.newDocumentBuilder();
        b.setErrorHandler(null);
        return b.parse(new ByteArrayInputStream(xml));
    }

    /** The files of the archive, each bounded, at most {@link #MAX_ENTRIES}; names with ".." are skipped. */
    static Map<String, byte[]> unzip(byte[] zip) throws IOException {
        Map<String, byte[]> files = new LinkedHashMap<>();
        try (ZipInputStream in = new ZipInputStream(new ByteArrayInputStream(zip))) {
            ZipEntry entry;
            int count = 0;
            while ((entry = in.getNextEntry()) != null) {
                if (++count > MAX_ENTRIES) {
                    throw new IOException("more than " + MAX_ENTRIES + " entries");
                }
                if (entry.isDirectory() || entry.getName().contains("..")) {
                    continue;
                }
                files.put(entry.getName(), bounded(in));
            }
        }
        return files;
    }

    private static byte[] bounded(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[65536];
        int n;
        while ((n = in.read(buf)) > 0) {
            if (out.size() + n > MAX_ENTRY_BYTES) {
                throw new IOException("an entry is larger than " + MAX_ENTRY_BYTES + " bytes");
            }
            out.write(buf, 0, n);
        }
        return out.toByteArray();
    }

    /** The decoded IHE_XDM.ZIP attachment of a MIME entity (multipart walked recursively), or null. */
    static byte[] attachment(byte[] entity, int depth) {
        if (depth > MAX_DEPTH) {
            return null;
        }
        String text = new String(entity, StandardCharsets.ISO_8859_1); // one char per octet: offsets are bytes
        int split = text.indexOf("\r\n\r\n");
        int skip = 4;
        if (split < 0) {
            split = text.indexOf("\n\n");
            skip = 2;
        }
        if (split < 0) {
            return null;
        }
        Map<String, String> h = Mime.headers(entity);
        String type = h.getOrDefault("content-type", "text/plain");
        String body = text.substring(split + skip);
        if (type.toLowerCase(Locale.ROOT).startsWith("multipart/")) {
            String boundary = Mime.parameter(type, "boundary");
            if (boundary == null) {
                return null;
            }
            String[] parts = body.split("(?m)^--" + java.util.regex.Pattern.quote(boundary) + "(--)?[ \t]*\r?$");
            for (int i = 1; i < parts.length; i++) {
                String part = parts[i].startsWith("\r\n") ? parts[i].substring(2) : parts[i].replaceFirst("^\n", "");
                byte[] found = attachment(part.getBytes(StandardCharsets.ISO_8859_1), depth + 1);
                if (found != null) {
                    return found;
                }
            }
            return null;
        }
        String name = Mime.parameter(h.getOrDefault("content-disposition", ""), "filename");
        if (name == null) {
            name = Mime.parameter(type, "name");
        }
        if (name == null || !name.equalsIgnoreCase("IHE_XDM.ZIP")) {
            return null;
        }
        if (!"base64".equalsIgnoreCase(h.getOrDefault("content-transfer-encoding", "").trim())) {
            return body.getBytes(StandardCharsets.ISO_8859_1);
        }
        return Base64.getMimeDecoder().decode(body.trim());
    }
}
