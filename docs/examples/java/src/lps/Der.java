package lps;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** The little DER (X.690) the LPS needs: walk a structure, find URIs, wrap a key into PKCS#8. */
final class Der {
    private Der() {
    }

    /** One TLV: its tag byte and the offsets of its content in {@code data}. */
    record Tlv(int tag, int start, int end, int next) {
    }

    /** Reads the TLV at {@code at}; throws {@link IllegalArgumentException} when it does not fit. */
    static Tlv read(byte[] data, int at) {
        if (at + 2 > data.length) {
            throw new IllegalArgumentException("DER: truncated");
        }
        int tag = data[at] & 0xff;
        int len = data[at + 1] & 0xff;
        int p = at + 2;
        if (len >= 0x80) {
            int n = len & 0x7f;
            if (n == 0 || n > 4 || p + n > data.length) {
                throw new IllegalArgumentException("DER: bad length");
            }
            len = 0;
            for (int i = 0; i < n; i++) {
                len = (len << 8) | (data[p++] & 0xff);
            }
        }
        if (len < 0 || p + len > data.length) {
            throw new IllegalArgumentException("DER: length past the end");
        }
        return new Tlv(tag, p, p + len, p + len);
    }

    /** The children of a constructed TLV. */
    static List<Tlv> children(byte[] data, Tlv parent) {
        List<Tlv> out = new ArrayList<>();
        int p = parent.start();
        while (p < parent.end()) {
            Tlv t = read(data, p);
            out.add(t);
            p = t.next();
        }
        return out;
    }

    /**
     * Every uniformResourceIdentifier (GeneralName [6], RFC 5280 §4.2.1.13) inside an extension value
     * as returned by {@code X509Certificate.getExtensionValue} (an OCTET STRING around the DER).
     */
    static List<String> uris(byte[] extensionValue) {
        List<String> out = new ArrayList<>();
        if (extensionValue == null) {
            return out;
        }
        Tlv octets = read(extensionValue, 0);
        collect(extensionValue, octets.start(), octets.end(), out, 0);
        return out;
    }

    private static void collect(byte[] data, int from, int to, List<String> out, int depth) {
        int p = from;
        while (p < to && depth < 16) {
            Tlv t = read(data, p);
            if (t.tag() == 0x86) {
                out.add(new String(data, t.start(), t.end() - t.start(), StandardCharsets.US_ASCII));
            } else if ((t.tag() & 0x20) != 0) {
                collect(data, t.start(), t.end(), out, depth + 1);
            }
            p = t.next();
        }
    }

    static byte[] tlv(int tag, byte[]... parts) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            body.writeBytes(part);
        }
        byte[] content = body.toByteArray();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(tag);
        int len = content.length;
        if (len < 0x80) {
            out.write(len);
        } else if (len < 0x100) {
            out.write(0x81);
            out.write(len);
        } else if (len < 0x10000) {
            out.write(0x82);
            out.write(len >> 8);
            out.write(len & 0xff);
        } else {
            out.write(0x83);
            out.write(len >> 16);
            out.write((len >> 8) & 0xff);
            out.write(len & 0xff);
        }
        out.writeBytes(content);
        return out.toByteArray();
    }

    private static byte[] raw(byte[] data, Tlv t, int headerFrom) {
        byte[] out = new byte[t.end() - headerFrom];
        System.arraycopy(data, headerFrom, out, 0, out.length);
        return out;
    }

    private static final byte[] RSA_OID = {0x06, 0x09, 0x2a, (byte) 0x86, 0x48, (byte) 0x86, (byte) 0xf7, 0x0d, 0x01, 0x01, 0x01};
    private static final byte[] EC_OID = {0x06, 0x07, 0x2a, (byte) 0x86, 0x48, (byte) 0xce, 0x3d, 0x02, 0x01};
    private static final byte[] VERSION_0 = {0x02, 0x01, 0x00};
    private static final byte[] NULL = {0x05, 0x00};

    /** PKCS#1 RSAPrivateKey (PEM "RSA PRIVATE KEY") wrapped into PKCS#8 PrivateKeyInfo (RFC 5208). */
    static byte[] pkcs8FromPkcs1(byte[] pkcs1) {
        return tlv(0x30, VERSION_0, tlv(0x30, RSA_OID, NULL), tlv(0x04, pkcs1));
    }

    /** SEC1 ECPrivateKey (PEM "EC PRIVATE KEY", RFC 5915) wrapped into PKCS#8 with its named curve. */
    static byte[] pkcs8FromSec1(byte[] sec1) {
        Tlv seq = read(sec1, 0);
        byte[] curve = null;
        for (Tlv child : children(sec1, seq)) {
            if (child.tag() == 0xa0) { // [0] ECParameters: the named curve OID
                Tlv oid = read(sec1, child.start());
                curve = raw(sec1, oid, child.start());
            }
        }
        if (curve == null) {
            throw new IllegalArgumentException("EC PRIVATE KEY without its curve (RFC 5915 parameters)");
        }
        return tlv(0x30, VERSION_0, tlv(0x30, EC_OID, curve), tlv(0x04, sec1));
    }
}
