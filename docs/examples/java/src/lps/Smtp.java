package lps;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.Map;

/** A submission session (RFC 6409) over {@link Wire}: EHLO, STARTTLS (RFC 3207), AUTH (RFC 4954), one message. */
final class Smtp implements AutoCloseable {
    /** An SMTP reply: the code and the text of its last line. */
    record Reply(int code, String text) {
        @Override
        public String toString() {
            return code + " " + text;
        }
    }

    private final Wire wire;
    private String last = "";
    private String extensions = "";

    Smtp(Wire wire) throws LpsException {
        this.wire = wire;
        Reply greeting = read();
        if (greeting.code() != 220) {
            throw new LpsException(LpsException.Kind.UNAVAILABLE, "SMTP greeting: " + greeting);
        }
    }

    Wire wire() {
        return wire;
    }

    Reply read() throws LpsException {
        StringBuilder all = new StringBuilder();
        while (true) {
            String line = wire.readLine();
            if (line.length() < 3) {
                throw new LpsException(LpsException.Kind.NETWORK, "bad SMTP reply: " + line);
            }
            all.append(line).append('\n');
            if (line.length() == 3 || line.charAt(3) != '-') {
                int code;
                try {
                    code = Integer.parseInt(line.substring(0, 3));
                } catch (NumberFormatException ex) {
                    throw new LpsException(LpsException.Kind.NETWORK, "bad SMTP reply: " + line);
                }
                if (code == 421) {
                    throw new LpsException(LpsException.Kind.NETWORK, "the operator closed the session: " + line);
                }
                last = all.toString();
                return new Reply(code, line.length() > 4 ? line.substring(4) : "");
            }
        }
    }

    Reply command(String text) throws LpsException {
        wire.line(text);
        return read();
    }

    void hello() throws LpsException {
        Reply r = command("EHLO lps-java.example");
        if (r.code() != 250) {
            throw new LpsException(LpsException.Kind.NETWORK, "EHLO refused: " + r);
        }
        extensions = last.toUpperCase();
    }

    void startTls(Trust trust, boolean oldTls) throws LpsException {
        Reply r = command("STARTTLS");
        if (r.code() != 220) {
            throw new LpsException(LpsException.Kind.TRUST, "STARTTLS refused: " + r);
        }
        wire.startTls(trust, oldTls);
        hello(); // RFC 3207 §4.2: forget what was learnt in clear
    }

    /**
     * AUTH {@code mechanism} (RFC 4954 §4). The initial response goes on the AUTH line only when that line
     * stays within 512 octets (RFC 4954 §4, RFC 5321 §4.5.3.1.4); otherwise it is sent after {@code 334}.
     * An error challenge ({@code 334} after the response, RFC 7628 §3.2.2) is answered with an empty line.
     */
    void authenticate(String mechanism, String response) throws LpsException {
        authenticate(mechanism, response, false);
    }

    /** {@code oneLine}: the broken variant's mistake (a common one): the initial response always on the AUTH line. */
    void authenticate(String mechanism, String response, boolean oneLine) throws LpsException {
        String b64 = Base64.getEncoder().encodeToString(response.getBytes(StandardCharsets.UTF_8));
        String first = "AUTH " + mechanism + " " + b64;
        Reply r;
        if (oneLine || first.length() + 2 <= 512) {
            r = command(first);
        } else {
            r = command("AUTH " + mechanism);
            if (r.code() == 334) {
                r = command(b64);
            }
        }
        if (r.code() == 334) {
            r = command("");
        }
        if (r.code() == 235) {
            return;
        }
        String text = r.toString();
        if (r.code() == 454 || text.toUpperCase().contains("UNAVAILABLE")) {
            throw new LpsException(LpsException.Kind.UNAVAILABLE, text);
        }
        if (text.toUpperCase().contains("AUTHORIZATION")) {
            throw new LpsException(LpsException.Kind.AUTHORIZATION_FAILED, text);
        }
        throw new LpsException(LpsException.Kind.AUTHENTICATION_FAILED, text);
    }

    /**
     * MAIL FROM, RCPT TO, DATA with dot-stuffing (RFC 5321 §4.5.2); returns the final reply. {@code dsn}
     * ({@code notify}, {@code ret}) asks for delivery status notifications when the server offers DSN (RFC 3461).
     */
    Reply send(String from, List<String> to, byte[] message, Map<String, Object> dsn) throws LpsException {
        boolean withDsn = dsn != null && extensions.matches("(?s).*\\b250[- ]DSN\\b.*");
        String ret = withDsn && Json.str(dsn, "ret") != null ? " RET=" + Json.str(dsn, "ret") : "";
        StringBuilder notify = new StringBuilder();
        if (withDsn) {
            for (Object n : Json.list(dsn, "notify")) {
                notify.append(notify.length() == 0 ? " NOTIFY=" : ",").append(n);
            }
        }
        Reply r = command("MAIL FROM:<" + from + ">" + ret);
        if (r.code() != 250) {
            throw new LpsException(LpsException.Kind.NETWORK, "MAIL FROM refused: " + r);
        }
        for (String rcpt : to) {
            r = command("RCPT TO:<" + rcpt + ">" + notify);
            if (r.code() != 250 && r.code() != 251) {
                throw new LpsException(LpsException.Kind.NETWORK, "RCPT TO refused: " + r);
            }
        }
        r = command("DATA");
        if (r.code() != 354) {
            throw new LpsException(LpsException.Kind.NETWORK, "DATA refused: " + r);
        }
        String text = new String(message, StandardCharsets.UTF_8).replace("\r\n", "\n");
        if (text.endsWith("\n")) {
            text = text.substring(0, text.length() - 1);
        }
        StringBuilder sb = new StringBuilder();
        for (String line : text.split("\n", -1)) {
            sb.append(line.startsWith(".") ? "." + line : line).append("\r\n");
        }
        sb.append(".\r\n");
        wire.bytes(sb.toString().getBytes(StandardCharsets.UTF_8));
        r = read();
        if (r.code() != 250) {
            throw new LpsException(LpsException.Kind.NETWORK, "message refused: " + r);
        }
        return r;
    }

    void quit() {
        try {
            wire.setTimeout(2000);
            command("QUIT");
        } catch (LpsException ex) {
            // closing anyway
        } finally {
            wire.close();
        }
    }

    @Override
    public void close() {
        wire.close();
    }
}
