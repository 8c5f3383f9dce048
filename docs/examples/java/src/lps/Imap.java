package lps;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** An IMAP4rev1 session (RFC 3501) over {@link Wire}: STARTTLS, SASL AUTHENTICATE, SELECT, FETCH, APPEND. */
final class Imap implements AutoCloseable {
    private static final Pattern LITERAL = Pattern.compile("\\{(\\d+)\\}$");

    /** What a command got: the untagged lines (with their literals) and the tagged completion. */
    record Reply(List<String> untagged, List<byte[]> literals, String tagged) {
        boolean ok() {
            return tagged.split(" ", 3).length > 1 && tagged.split(" ", 3)[1].equalsIgnoreCase("OK");
        }
    }

    private final Wire wire;
    private int counter;
    private String capabilities = "";

    Imap(Wire wire) throws LpsException {
        this.wire = wire;
        String greeting = wire.readLine();
        if (!greeting.startsWith("* OK")) {
            throw new LpsException(LpsException.Kind.UNAVAILABLE, "IMAP greeting: " + greeting);
        }
    }

    Wire wire() {
        return wire;
    }

    private String tag() {
        return "J" + (++counter);
    }

    /** Sends a command and reads until its tagged completion; a BYE ends the session (NETWORK). */
    Reply command(String text) throws LpsException {
        String tag = tag();
        wire.line(tag + " " + text);
        return read(tag);
    }

    private Reply read(String tag) throws LpsException {
        List<String> untagged = new ArrayList<>();
        List<byte[]> literals = new ArrayList<>();
        while (true) {
            String line = wire.readLine();
            StringBuilder full = new StringBuilder(line);
            Matcher m = LITERAL.matcher(line);
            while (m.find()) {
                literals.add(wire.readBytes(Integer.parseInt(m.group(1))));
                line = wire.readLine();
                full.append(" <literal> ").append(line);
                m = LITERAL.matcher(line);
            }
            String s = full.toString();
            if (s.startsWith(tag + " ")) {
                return new Reply(untagged, literals, s);
            }
            if (s.startsWith("* BYE")) {
                throw new LpsException(LpsException.Kind.NETWORK, "the operator ended the session: " + s);
            }
            untagged.add(s);
        }
    }

    String capabilities() throws LpsException {
        Reply r = command("CAPABILITY");
        for (String u : r.untagged()) {
            if (u.toUpperCase().startsWith("* CAPABILITY")) {
                capabilities = u.toUpperCase();
            }
        }
        return capabilities;
    }

    /** The capabilities last announced (upper case). */
    String capabilitiesText() {
        return capabilities;
    }

    /** STARTTLS (RFC 3501 §6.2.1) then CAPABILITY again over TLS. */
    void startTls(Trust trust, boolean oldTls) throws LpsException {
        Reply r = command("STARTTLS");
        if (!r.ok()) {
            throw new LpsException(LpsException.Kind.TRUST, "STARTTLS refused: " + r.tagged());
        }
        wire.startTls(trust, oldTls);
        capabilities();
    }

    /**
     * AUTHENTICATE {@code mechanism} with one client response (RFC 3501 §6.2.2, RFC 4959 SASL-IR when
     * offered). An error challenge (RFC 7628 §3.2.2) is answered with an empty response.
     */
    void authenticate(String mechanism, String response) throws LpsException {
        String b64 = Base64.getEncoder().encodeToString(response.getBytes(StandardCharsets.UTF_8));
        String tag = tag();
        boolean saslIr = capabilities.contains("SASL-IR");
        wire.line(tag + " AUTHENTICATE " + mechanism + (saslIr ? " " + b64 : ""));
        boolean sent = saslIr;
        while (true) {
            String line = wire.readLine();
            if (line.startsWith("+")) {
                wire.line(sent ? "" : b64);
                sent = true;
                continue;
            }
            if (line.startsWith(tag + " ")) {
                String upper = line.toUpperCase();
                if (upper.startsWith(tag + " OK")) {
                    return;
                }
                throw refusal(line);
            }
            if (line.startsWith("* BYE")) {
                throw new LpsException(LpsException.Kind.NETWORK, line);
            }
        }
    }

    /** RFC 5530 response codes: whose fault, and what to do next. */
    static LpsException refusal(String line) {
        String upper = line.toUpperCase();
        if (upper.contains("[AUTHORIZATIONFAILED]")) {
            return new LpsException(LpsException.Kind.AUTHORIZATION_FAILED, line);
        }
        if (upper.contains("[UNAVAILABLE]")) {
            return new LpsException(LpsException.Kind.UNAVAILABLE, line);
        }
        return new LpsException(LpsException.Kind.AUTHENTICATION_FAILED, line);
    }

    /** APPEND a message with a synchronising literal (RFC 3501 §6.3.11). */
    Reply append(String mailbox, String flags, byte[] message) throws LpsException {
        String tag = tag();
        wire.line(tag + " APPEND " + mailbox + " (" + flags + ") {" + message.length + "}");
        String cont = wire.readLine();
        if (!cont.startsWith("+")) {
            return new Reply(List.of(), List.of(), cont);
        }
        wire.bytes(message);
        wire.line("");
        return read(tag);
    }

    void logout() {
        try {
            String tag = tag();
            wire.line(tag + " LOGOUT");
            wire.setTimeout(2000);
            while (!wire.readLine().startsWith(tag + " ")) {
                // the BYE, then the completion
            }
        } catch (LpsException ex) {
            // the session is going away anyway
        } finally {
            wire.close();
        }
    }

    @Override
    public void close() {
        wire.close();
    }
}
