package lps;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.CertPathBuilder;
import java.security.cert.CertStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.PKIXRevocationChecker;
import java.security.cert.TrustAnchor;
import java.security.cert.X509CRL;
import java.security.cert.X509CertSelector;
import java.security.cert.X509Certificate;
import java.security.spec.InvalidKeySpecException;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Date;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import javax.net.ssl.CertPathTrustManagerParameters;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * TLS for the IMAP and SMTP fronts, from the sandbox's IGC Santé bundle only.
 *
 * <ul>
 * <li>TLS 1.2 minimum (ECO.1.1.1); in TLS 1.2 only the four ECDHE-RSA suites of ECO.1.1.3.</li>
 * <li>The operator's chain must end at an IGC Santé root of the bundle (ECO.1.1.10), be within its dates
 * (ECO.1.1.5), and not be revoked (ECO.1.1.6): the JDK's PKIX validator runs with revocation on, CRLs
 * only, with the CRLs downloaded from the certificates' distribution points and sandbox.json's
 * {@code crl_urls}. When a download fails, the last valid CRL of that URL is used while it is valid
 * (ECO.1.1.7); with none, validation fails (fail closed).</li>
 * <li>The host name is the SRV target, checked by the JDK (endpoint identification, RFC 6125) and sent
 * as SNI.</li>
 * </ul>
 */
final class Trust {
    static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};
    static final String[] SUITES = {
        "TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    };

    private final Set<TrustAnchor> anchors = new HashSet<>();
    private final List<X509Certificate> intermediates = new ArrayList<>();
    private final List<String> configuredCrls;
    private final Map<String, X509CRL> lastValid = new ConcurrentHashMap<>();
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
    private final KeyManager[] keyManagers;
    /** The broken variant "no-cert-check" trusts any certificate (to show the suite catches it). */
    private final boolean checkServer;
    /** The broken variant "no-sni" names no server in the handshake, like a client that connects by address. */
    private final boolean sni;

    Trust(Map<String, Object> info, Path clientCert, Path clientKey, boolean checkServer, boolean sni)
            throws LpsException {
        this.checkServer = checkServer;
        this.sni = sni;
        this.configuredCrls = new ArrayList<>();
        for (Object url : Json.list(info, "crl_urls")) {
            configuredCrls.add(String.valueOf(url));
        }
        try {
            CertificateFactory cf = CertificateFactory.getInstance("X.509");
            for (Certificate c : cf.generateCertificates(Files.newInputStream(Path.of(Json.str(info, "ca_bundle"))))) {
                X509Certificate x = (X509Certificate) c;
                if (x.getSubjectX500Principal().equals(x.getIssuerX500Principal())) {
                    anchors.add(new TrustAnchor(x, null));
                } else {
                    intermediates.add(x);
                }
            }
            if (anchors.isEmpty()) {
                throw new LpsException(LpsException.Kind.CONFIG, "the CA bundle holds no root certificate");
            }
            keyManagers = clientCert == null ? null : keyManagers(cf, clientCert, clientKey);
        } catch (IOException | GeneralSecurityException ex) {
            throw new LpsException(LpsException.Kind.CONFIG, "cannot load the trust material: " + ex.getMessage());
        }
    }

    /** A client certificate and its PEM key (PKCS#8, PKCS#1 RSA or SEC1 EC) as a key manager, in memory only. */
    private static KeyManager[] keyManagers(CertificateFactory cf, Path certFile, Path keyFile)
            throws IOException, GeneralSecurityException {
        Collection<? extends Certificate> chain = cf.generateCertificates(Files.newInputStream(certFile));
        String pem = Files.readString(keyFile, StandardCharsets.US_ASCII);
        String type = pem.substring(pem.indexOf("-----BEGIN ") + 11, pem.indexOf("-----", pem.indexOf("-----BEGIN ") + 11));
        String b64 = pem.replaceAll("-----[^-]+-----", "").replaceAll("\\s", "");
        byte[] der = Base64.getDecoder().decode(b64);
        byte[] pkcs8 = switch (type) {
            case "PRIVATE KEY" -> der;
            case "RSA PRIVATE KEY" -> Der.pkcs8FromPkcs1(der);
            case "EC PRIVATE KEY" -> Der.pkcs8FromSec1(der);
            default -> throw new GeneralSecurityException("unsupported key PEM type " + type + " (encrypted keys are not)");
        };
        PrivateKey key = null;
        for (String alg : new String[] {"RSA", "EC"}) {
            try {
                key = KeyFactory.getInstance(alg).generatePrivate(new PKCS8EncodedKeySpec(pkcs8));
                break;
            } catch (InvalidKeySpecException ex) {
                // try the next algorithm
            }
        }
        if (key == null) {
            throw new GeneralSecurityException("the key is neither RSA nor EC");
        }
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        char[] pw = "in-memory".toCharArray();
        ks.setKeyEntry("client", key, pw, chain.toArray(new Certificate[0]));
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, pw);
        return kmf.getKeyManagers();
    }

    /** Wraps a connected socket in TLS for {@code host} (STARTTLS), handshake done; throws TRUST on refusal. */
    SSLSocket wrap(Socket plain, String host, int port, boolean oldTls) throws LpsException {
        try {
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(keyManagers, new TrustManager[] {new Checker()}, null);
            SSLSocket tls = (SSLSocket) ctx.getSocketFactory().createSocket(plain, host, port, true);
            SSLParameters params = tls.getSSLParameters();
            params.setProtocols(oldTls ? new String[] {"TLSv1.1"} : PROTOCOLS);
            if (!oldTls) {
                params.setCipherSuites(SUITES);
            }
            params.setServerNames(sni ? List.of(new SNIHostName(host)) : List.of());
            params.setEndpointIdentificationAlgorithm(checkServer ? "HTTPS" : null); // RFC 6125 host name check
            tls.setSSLParameters(params);
            tls.startHandshake();
            return tls;
        } catch (javax.net.ssl.SSLException ex) {
            throw new LpsException(LpsException.Kind.TRUST, "TLS handshake refused: " + ex.getMessage());
        } catch (IOException | GeneralSecurityException ex) {
            throw new LpsException(LpsException.Kind.NETWORK, "TLS: " + ex.getMessage());
        }
    }

    /** The CRL of {@code url}: a fresh download, else the last valid one while it is valid (ECO.1.1.7). */
    private X509CRL crl(String url) {
        Date now = new Date();
        try {
            HttpResponse<byte[]> r = http.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(3)).GET().build(),
                HttpResponse.BodyHandlers.ofByteArray());
            if (r.statusCode() == 200 && r.body().length < 10_000_000) {
                X509CRL crl = (X509CRL) CertificateFactory.getInstance("X.509").generateCRL(new ByteArrayInputStream(r.body()));
                if (crl.getNextUpdate() == null || crl.getNextUpdate().after(now)) {
                    lastValid.put(url, crl);
                    return crl;
                }
            }
        } catch (IOException | GeneralSecurityException | RuntimeException ex) {
            // unreachable or unreadable: fall back on the last valid CRL
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
        }
        X509CRL kept = lastValid.get(url);
        return kept != null && (kept.getNextUpdate() == null || kept.getNextUpdate().after(now)) ? kept : null;
    }

    /** Delegates to the JDK's PKIX trust manager, built per handshake with the CRLs the chain points to. */
    private final class Checker extends X509ExtendedTrustManager {
        private X509ExtendedTrustManager pkix(X509Certificate[] chain) throws CertificateException {
            Set<String> urls = new LinkedHashSet<>();
            for (X509Certificate c : chain) {
                urls.addAll(Der.uris(c.getExtensionValue("2.5.29.31"))); // CRL distribution points
            }
            for (X509Certificate c : intermediates) {
                urls.addAll(Der.uris(c.getExtensionValue("2.5.29.31")));
            }
            urls.addAll(configuredCrls);
            List<Object> material = new ArrayList<>(intermediates);
            for (String url : urls) {
                if (url.startsWith("http://") || url.startsWith("https://")) {
                    X509CRL crl = crl(url);
                    if (crl != null) {
                        material.add(crl);
                    }
                }
            }
            try {
                PKIXBuilderParameters params = new PKIXBuilderParameters(anchors, new X509CertSelector());
                params.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(material)));
                PKIXRevocationChecker rc = (PKIXRevocationChecker) CertPathBuilder.getInstance("PKIX").getRevocationChecker();
                rc.setOptions(EnumSet.of(PKIXRevocationChecker.Option.PREFER_CRLS, PKIXRevocationChecker.Option.NO_FALLBACK));
                params.addCertPathChecker(rc);
                params.setRevocationEnabled(false); // the checker above does it (CRLs only)
                TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
                tmf.init(new CertPathTrustManagerParameters(params));
                return (X509ExtendedTrustManager) tmf.getTrustManagers()[0];
            } catch (GeneralSecurityException ex) {
                throw new CertificateException("cannot set up PKIX validation: " + ex.getMessage(), ex);
            }
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
            if (checkServer) {
                pkix(chain).checkServerTrusted(chain, authType, socket);
            }
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
            if (checkServer) {
                pkix(chain).checkServerTrusted(chain, authType, engine);
            }
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            throw new CertificateException("a socket is needed to check the host name");
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
            throw new CertificateException("not a server");
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
            throw new CertificateException("not a server");
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            throw new CertificateException("not a server");
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            X509Certificate[] out = new X509Certificate[anchors.size()];
            int i = 0;
            for (TrustAnchor a : anchors) {
                out[i++] = a.getTrustedCert();
            }
            return out;
        }
    }
}
