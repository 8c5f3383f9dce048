package lps;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import javax.net.ssl.SSLSocket;

/** One TCP connection to a front, in clear until {@link #startTls}; CRLF lines and IMAP literals. */
final class Wire implements AutoCloseable {
    private static final int MAX_LINE = 64 * 1024;

    final Dns.Endpoint endpoint;
    private Socket socket;
    private InputStream in;
    private OutputStream out;
    private boolean tls;

    Wire(Dns.Endpoint endpoint, int timeoutMillis) throws LpsException {
        this.endpoint = endpoint;
        try {
            socket = new Socket();
            socket.connect(new InetSocketAddress(endpoint.address(), endpoint.port()), timeoutMillis);
            socket.setSoTimeout(timeoutMillis);
            in = new BufferedInputStream(socket.getInputStream());
            out = socket.getOutputStream();
        } catch (IOException ex) {
            throw new LpsException(LpsException.Kind.NETWORK, "cannot connect to " + endpoint.host() + ": " + ex.getMessage());
        }
    }

    boolean secure() {
        return tls;
    }

    SSLSocket sslSocket() {
        return tls ? (SSLSocket) socket : null;
    }

    /** STARTTLS done: from now on every byte goes through TLS, checked by {@code trust}. */
    void startTls(Trust trust, boolean oldTls) throws LpsException {
        SSLSocket s = trust.wrap(socket, endpoint.host(), endpoint.port(), oldTls);
        try {
            socket = s;
            in = new BufferedInputStream(s.getInputStream());
            out = s.getOutputStream();
            tls = true;
        } catch (IOException ex) {
            throw new LpsException(LpsException.Kind.NETWORK, "TLS: " + ex.getMessage());
        }
    }

    void setTimeout(int millis) throws LpsException {
        try {
            socket.setSoTimeout(millis);
        } catch (IOException ex) {
            throw new LpsException(LpsException.Kind.NETWORK, ex.getMessage());
        }
    }

    /** Sends a line (CRLF added). */
    void line(String text) throws LpsException {
        bytes((text + "\r\n").getBytes(StandardCharsets.UTF_8));
    }

    void bytes(byte[] data) throws LpsException {
        try {
            out.write(data);
            out.flush();
        } catch (IOException ex) {
            throw new LpsException(LpsException.Kind.NETWORK, "connection lost: " + ex.getMessage());
        }
    }

    /** Reads one line without its CRLF; NETWORK when the peer closed. */
    String readLine() throws LpsException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try {
            while (true) {
                int b = in.read();
                if (b < 0) {
                    throw new LpsException(LpsException.Kind.NETWORK, "connection closed by " + endpoint.host());
                }
                if (b == '\n') {
                    break;
                }
                if (buf.size() > MAX_LINE) {
                    throw new LpsException(LpsException.Kind.NETWORK, "line too long from " + endpoint.host());
                }
                buf.write(b);
            }
        } catch (IOException ex) {
            throw new LpsException(LpsException.Kind.NETWORK, "connection lost: " + ex.getMessage());
        }
        byte[] raw = buf.toByteArray();
        int n = raw.length > 0 && raw[raw.length - 1] == '\r' ? raw.length - 1 : raw.length;
        return new String(raw, 0, n, StandardCharsets.UTF_8);
    }

    /** Reads exactly {@code n} bytes (an IMAP literal). */
    byte[] readBytes(int n) throws LpsException {
        if (n < 0 || n > 50_000_000) {
            throw new LpsException(LpsException.Kind.NETWORK, "literal too large: " + n);
        }
        try {
            return in.readNBytes(n);
        } catch (IOException ex) {
            throw new LpsException(LpsException.Kind.NETWORK, "connection lost: " + ex.getMessage());
        }
    }

    @Override
    public void close() {
        try {
            socket.close();
        } catch (IOException ex) {
            // already gone
        }
    }
}
