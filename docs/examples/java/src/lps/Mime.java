package lps;

import java.nio.charset.StandardCharsets;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** RFC 5322 / MIME messages as the LPS writes them (X-MSS headers, IHE_XDM.ZIP, MDN) and reads them. */
final class Mime {
    private static final DateTimeFormatter DATE = DateTimeFormatter.ofPattern("EEE, dd MMM yyyy HH:mm:ss Z", Locale.US);

    private Mime() {
    }

    /** A header value, RFC 2047 encoded-words (UTF-8, base64) when it is not plain ASCII. */
    static String encodeWord(String value) {
        if (value.chars().allMatch(c -> c >= 0x20 && c < 0x7f)) {
            return value;
        }
        StringBuilder out = new StringBuilder();
        StringBuilder chunk = new StringBuilder();
        int bytes = 0;
        for (int i = 0; i < value.length(); ) {
            int cp = value.codePointAt(i);
            String s = new String(Character.toChars(cp));
            int n = s.getBytes(StandardCharsets.UTF_8).length;
            if (bytes + n > 42) { // an encoded-word stays within 75 characters (RFC 2047 §2)
                out.append(out.length() > 0 ? "\r\n " : "").append(word(chunk.toString()));
                chunk.setLength(0);
                bytes = 0;
            }
            chunk.append(s);
            bytes += n;
            i += Character.charCount(cp);
        }
        out.append(out.length() > 0 ? "\r\n " : "").append(word(chunk.toString()));
        return out.toString();
    }

    /** A display name (RFC 5322 §3.2.5): a quoted string when ASCII, else RFC 2047 encoded-words. */
    static String phrase(String label) {
        String encoded = encodeWord(label);
        return encoded.equals(label) ? "\"" + label.replace("\\", "\\\\").replace("\"", "\\\"") + "\"" : encoded;
    }

    private static String word(String s) {
        return "=?UTF-8?B?" + Base64.getEncoder().encodeToString(s.getBytes(StandardCharsets.UTF_8)) + "?=";
    }

    private static String b64Lines(byte[] data) {
        return Base64.getMimeEncoder(76, "\r\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(data) + "\r\n";
    }

    static String messageId(String bal) {
        String domain = bal.substring(bal.indexOf('@') + 1);
        return "<" + ZonedDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMddHHmmss")) + "."
            + Documents.randomHex(10) + "@" + domain + ">";
    }

    /** What the LPS is asked to send. */
    record Outgoing(String from, String label, List<String> to, String subject, String text, boolean requestMdn,
                    Documents.Document document, String nil, ReplyTo replyTo, boolean endOfExchange) {
    }

    /** The message a reply answers: its Message-ID and its own References (RFC 5322 §3.6.4). */
    record ReplyTo(String parent, String references) {
        /** References of the reply: the parent's References (or In-Reply-To), then the parent. */
        String replyReferences() {
            return (references == null || references.isBlank() ? "" : references.trim() + " ") + parent;
        }
    }

    /**
     * The message: From with the BAL's label (ECO.2.2.7), Message-ID, X-MSS-NIL (ECO.2.4.3), with a document
     * X-MSS-CODECDA / X-MSS-INS (ECO.2.4.1, ECO.2.4.2), the XDM subject (ECO.2.1.3), a UTF-8 text/plain body
     * (ECO.2.2.3/4), IHE_XDM.ZIP and its PDF companion (ECO.2.1.1, ECO.2.1.6), Disposition-Notification-To
     * when a read receipt is wanted (ECO.2.3.2, RFC 8098 §2.1).
     */
    static byte[] compose(Outgoing m, String messageId) {
        StringBuilder h = new StringBuilder();
        h.append("From: ").append(phrase(m.label())).append(" <").append(m.from()).append(">\r\n");
        h.append("To: ").append(String.join(", ", m.to())).append("\r\n");
        String subject = m.document() != null ? m.document().subject() : m.subject();
        h.append("Subject: ").append(encodeWord(subject)).append("\r\n");
        h.append("Date: ").append(ZonedDateTime.now().format(DATE)).append("\r\n");
        h.append("Message-ID: ").append(messageId).append("\r\n");
        if (m.replyTo() != null) { // ECO.2.2.2
            h.append("In-Reply-To: ").append(m.replyTo().parent()).append("\r\n");
            h.append("References: ").append(m.replyTo().replyReferences()).append("\r\n");
        }
        if (m.endOfExchange()) {
            h.append("X-MSS-MES: FIN\r\n"); // ECO.2.2.8: the patient may not answer
        }
        if (m.requestMdn()) {
            h.append("Disposition-Notification-To: ").append(m.from()).append("\r\n");
        }
        if (m.nil() != null) {
            h.append("X-MSS-NIL: ").append(m.nil()).append("\r\n");
        }
        if (m.document() != null) {
            h.append("X-MSS-CODECDA: ").append(m.document().kind().loinc).append("\r\n");
            h.append("X-MSS-INS: O\r\n"); // the fixture's patient has a qualified INS
        }
        h.append("MIME-Version: 1.0\r\n");
        String textPart = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + b64Lines(m.text().getBytes(StandardCharsets.UTF_8));
        if (m.document() == null) {
            return (h + textPart).getBytes(StandardCharsets.UTF_8);
        }
        String boundary = "=_lps_java_" + Documents.randomHex(12);
        StringBuilder b = new StringBuilder();
        b.append("Content-Type: multipart/mixed; boundary=\"").append(boundary).append("\"\r\n\r\n");
        b.append("--").append(boundary).append("\r\n").append(textPart);
        b.append("--").append(boundary).append("\r\n")
            .append("Content-Type: application/zip; name=\"IHE_XDM.ZIP\"\r\n")
            .append("Content-Disposition: attachment; filename=\"IHE_XDM.ZIP\"\r\n")
            .append("Content-Transfer-Encoding: base64\r\n\r\n").append(b64Lines(m.document().archive()));
        String pdf = m.document().pdfName();
        b.append("--").append(boundary).append("\r\n")
            .append("Content-Type: application/pdf; name=\"").append(pdf).append("\"\r\n")
            .append("Content-Disposition: attachment; filename=\"").append(pdf).append("\"\r\n")
            .append("Content-Transfer-Encoding: base64\r\n\r\n").append(b64Lines(m.document().pdf()));
        b.append("--").append(boundary).append("--\r\n");
        return (h.toString() + b).getBytes(StandardCharsets.UTF_8);
    }

    /** The header fields of a message, unfolded, names lower-cased (the first value of each name). */
    static Map<String, String> headers(byte[] raw) {
        String text = new String(raw, StandardCharsets.UTF_8);
        int end = text.indexOf("\r\n\r\n");
        if (end < 0) {
            end = text.indexOf("\n\n");
        }
        String block = (end < 0 ? text : text.substring(0, end)).replaceAll("\r?\n[ \t]+", " ");
        Map<String, String> out = new LinkedHashMap<>();
        for (String line : block.split("\r?\n")) {
            int colon = line.indexOf(':');
            if (colon > 0) {
                out.putIfAbsent(line.substring(0, colon).trim().toLowerCase(Locale.ROOT), line.substring(colon + 1).trim());
            }
        }
        return out;
    }

    /** A parameter of a structured header value ({@code boundary}, {@code filename}, {@code name}), unquoted. */
    static String parameter(String value, String name) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile(
            "(?i);\\s*" + java.util.regex.Pattern.quote(name) + "\\s*=\\s*(\"([^\"]*)\"|[^;\\s]+)").matcher(value);
        return m.find() ? (m.group(2) != null ? m.group(2) : m.group(1)) : null;
    }

    /** A header value with its RFC 2047 encoded-words (B and Q, any charset Java knows) decoded. */
    static String decodeWords(String value) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("=\\?([^?]+)\\?([BbQq])\\?([^?]*)\\?=(\\s+(?==\\?))?")
            .matcher(value);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String decoded;
            try {
                java.nio.charset.Charset cs = java.nio.charset.Charset.forName(m.group(1).replaceAll("\\*.*", ""));
                byte[] bytes = m.group(2).equalsIgnoreCase("B") ? Base64.getDecoder().decode(m.group(3)) : qDecode(m.group(3));
                decoded = new String(bytes, cs);
            } catch (IllegalArgumentException ex) {
                decoded = m.group();
            }
            m.appendReplacement(out, java.util.regex.Matcher.quoteReplacement(decoded));
        }
        m.appendTail(out);
        return out.toString();
    }

    private static byte[] qDecode(String s) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '_') {
                out.write(' ');
            } else if (c == '=' && i + 2 < s.length()) {
                out.write(Integer.parseInt(s.substring(i + 1, i + 3), 16));
                i += 2;
            } else {
                out.write(c);
            }
        }
        return out.toByteArray();
    }

    /** The address inside {@code "Label <a@b>"} or a bare address. */
    static String address(String value) {
        int lt = value.lastIndexOf('<');
        int gt = value.lastIndexOf('>');
        return lt >= 0 && gt > lt ? value.substring(lt + 1, gt).trim() : value.trim();
    }

    /**
     * A read receipt (RFC 8098 §3): multipart/report with a human part, the machine-readable
     * message/disposition-notification (Final-Recipient, Original-Message-ID, Disposition) and the
     * original's header fields.
     */
    static byte[] mdn(String bal, String label, Map<String, String> original, String messageId, String nil,
                      byte[] originalRaw) {
        String to = address(original.getOrDefault("disposition-notification-to", ""));
        String originalId = original.getOrDefault("message-id", "");
        String boundary = "=_lps_java_mdn_" + Documents.randomHex(12);
        StringBuilder m = new StringBuilder();
        m.append("From: ").append(phrase(label)).append(" <").append(bal).append(">\r\n");
        m.append("To: ").append(to).append("\r\n");
        m.append("Subject: ").append(encodeWord("Accusé de lecture")).append("\r\n");
        m.append("Date: ").append(ZonedDateTime.now().format(DATE)).append("\r\n");
        m.append("Message-ID: ").append(messageId).append("\r\n");
        if (!originalId.isEmpty()) {
            m.append("In-Reply-To: ").append(originalId).append("\r\n");
            m.append("References: ").append(new ReplyTo(originalId, original.get("references")).replyReferences())
                .append("\r\n");
        }
        if (nil != null) {
            m.append("X-MSS-NIL: ").append(nil).append("\r\n");
        }
        m.append("MIME-Version: 1.0\r\n");
        m.append("Content-Type: multipart/report; report-type=disposition-notification; boundary=\"")
            .append(boundary).append("\"\r\n\r\n");
        m.append("--").append(boundary).append("\r\n")
            .append("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n")
            .append(b64Lines("Le message a été affiché sur le poste du destinataire.\r\n".getBytes(StandardCharsets.UTF_8)));
        m.append("--").append(boundary).append("\r\n")
            .append("Content-Type: message/disposition-notification\r\n\r\n")
            .append("Reporting-UA: lps-java.example; LPS Java d'exemple\r\n")
            .append("Final-Recipient: rfc822;").append(bal).append("\r\n");
        if (!originalId.isEmpty()) {
            m.append("Original-Message-ID: ").append(originalId).append("\r\n");
        }
        m.append("Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n");
        String text = new String(originalRaw, StandardCharsets.UTF_8);
        int end = text.indexOf("\r\n\r\n");
        String head = end < 0 ? "" : text.substring(0, end + 2);
        m.append("--").append(boundary).append("\r\n")
            .append("Content-Type: text/rfc822-headers\r\n\r\n").append(head).append("\r\n");
        m.append("--").append(boundary).append("--\r\n");
        return m.toString().getBytes(StandardCharsets.UTF_8);
    }
}
