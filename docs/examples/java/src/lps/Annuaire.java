package lps;

import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;

/**
 * The Annuaire Santé (FHIR R4 API of the ANS; the sandbox's mock at {@code annuaire.base_url} of sandbox.json):
 * the BAL PER of a professional found by identifier (idNatPs / RPPS) and name (ECO.3.1.4). The API key goes in
 * the header named by {@code annuaire.api_key_header}; mailboxes are the {@code telecom} ContactPoints
 * ({@code system = email}) of the Practitioner, typed PER by the {@code as-ext-mailbox-mss-metadata} extension.
 */
final class Annuaire {
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final String base;
    private final String keyHeader;
    private final String key;

    Annuaire(Map<String, Object> info) throws LpsException {
        Map<String, Object> a = Json.obj(info, "annuaire");
        this.base = Json.str(a, "base_url");
        this.keyHeader = Json.str(a, "api_key_header");
        this.key = Json.str(a, "api_key");
        if (base == null || keyHeader == null || key == null) {
            throw new LpsException(LpsException.Kind.CONFIG, "sandbox.json has no annuaire.base_url/api_key_header/api_key");
        }
    }

    /**
     * The first BAL PER of the practitioner with this identifier and family name.
     *
     * @throws LpsException NETWORK when the directory cannot be reached or answers an error, CONFIG when no BAL
     *                      PER is found
     */
    String personalMailbox(String nationalId, String familyName) throws LpsException {
        String url = base.replaceAll("/+$", "") + "/Practitioner?identifier=" + enc(nationalId) + "&name=" + enc(familyName);
        HttpResponse<String> r;
        try {
            r = HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10))
                .header(keyHeader, key).header("Accept", "application/fhir+json").GET().build(),
                HttpResponse.BodyHandlers.ofString());
        } catch (IOException ex) {
            throw new LpsException(LpsException.Kind.NETWORK, "Annuaire Santé injoignable : " + ex.getMessage());
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new LpsException(LpsException.Kind.NETWORK, "interrompu");
        }
        if (r.statusCode() != 200) {
            throw new LpsException(LpsException.Kind.NETWORK, "Annuaire Santé : HTTP " + r.statusCode());
        }
        Object bundle = Json.parse(r.body());
        for (Object entry : Json.list(bundle, "entry")) {
            Map<String, Object> resource = Json.obj(entry, "resource");
            if (!"Practitioner".equals(Json.str(resource, "resourceType"))) {
                continue;
            }
            for (Object telecom : Json.list(resource, "telecom")) {
                // the BAL type is a coding of the mailbox metadata extension: code PER
                if ("email".equals(Json.str(telecom, "system")) && hasCode(telecom, "PER")) {
                    return Json.str(telecom, "value");
                }
            }
        }
        throw new LpsException(LpsException.Kind.CONFIG, "aucune BAL PER pour " + familyName + " (" + nationalId
            + ") dans l'Annuaire Santé");
    }

    /** Whether a coding with this code appears anywhere in a JSON value (the extension's nesting varies). */
    private static boolean hasCode(Object value, String code) {
        if (value instanceof Map<?, ?> m) {
            if (code.equals(m.get("code"))) {
                return true;
            }
            return m.values().stream().anyMatch(v -> hasCode(v, code));
        }
        return value instanceof java.util.List<?> l && l.stream().anyMatch(v -> hasCode(v, code));
    }

    private static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8);
    }
}
