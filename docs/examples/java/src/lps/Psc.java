package lps;

import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.StringJoiner;

/**
 * Pro Santé Connect for a BAL PER/ORG: the professional's login by CIBA (OpenID Connect Client-Initiated
 * Backchannel Authentication, poll mode), then access tokens refreshed ahead of expiry with the refresh
 * token. Tokens live in memory only and are never printed or traced (ECO.1.2.5).
 *
 * <p>PSC asks for {@code scope=openid scope_all} and {@code acr_values=eidas1}; the client authenticates
 * with {@code client_secret_basic}. Endpoints come from the discovery document of sandbox.json.
 */
final class Psc {
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final String discoveryUrl;
    private final String basic;
    private final String nationalId;
    private String tokenEndpoint;
    private String cibaEndpoint;
    private String access;
    private String refresh;
    private long expiresAtMillis;

    Psc(Map<String, Object> info, String nationalId) {
        Map<String, Object> psc = Json.obj(info, "psc");
        this.discoveryUrl = Json.str(psc, "discovery_url");
        String id = URLEncoder.encode(Json.str(psc, "client_id"), StandardCharsets.UTF_8);
        String secret = URLEncoder.encode(Json.str(psc, "client_secret"), StandardCharsets.UTF_8);
        this.basic = "Basic " + Base64.getEncoder().encodeToString((id + ":" + secret).getBytes(StandardCharsets.UTF_8));
        this.nationalId = nationalId;
    }

    /** The professional's national id (RPPS/ADELI), the author of the traces. */
    String nationalId() {
        return nationalId;
    }

    synchronized boolean loggedIn() {
        return refresh != null;
    }

    private Map<String, Object> call(String url, Map<String, String> form, boolean withClient) throws LpsException {
        StringJoiner body = new StringJoiner("&");
        form.forEach((k, v) -> body.add(k + "=" + URLEncoder.encode(v, StandardCharsets.UTF_8)));
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10));
        if (form.isEmpty()) {
            b.GET();
        } else {
            b.header("Content-Type", "application/x-www-form-urlencoded")
                .POST(HttpRequest.BodyPublishers.ofString(body.toString()));
        }
        if (withClient) {
            b.header("Authorization", basic);
        }
        try {
            HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
            Object parsed = Json.parse(r.body());
            @SuppressWarnings("unchecked")
            Map<String, Object> json = parsed instanceof Map ? (Map<String, Object>) parsed : new LinkedHashMap<>();
            if (r.statusCode() / 100 != 2 && Json.str(json, "error") == null) {
                json.put("error", "http_" + r.statusCode());
            }
            return json;
        } catch (IOException | IllegalArgumentException ex) {
            throw new LpsException(LpsException.Kind.UNAVAILABLE, "PSC unreachable: " + ex.getMessage());
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new LpsException(LpsException.Kind.NETWORK, "interrupted");
        }
    }

    private void discover() throws LpsException {
        if (tokenEndpoint == null) {
            Map<String, Object> doc = call(discoveryUrl, Map.of(), false);
            tokenEndpoint = Json.str(doc, "token_endpoint");
            cibaEndpoint = Json.str(doc, "backchannel_authentication_endpoint");
            if (tokenEndpoint == null || cibaEndpoint == null) {
                throw new LpsException(LpsException.Kind.CONFIG, "the PSC discovery document has no CIBA endpoints");
            }
        }
    }

    /** CIBA login (the professional approves on their e-CPS), polling at the interval PSC gives. */
    synchronized void login() throws LpsException {
        discover();
        Map<String, String> form = new LinkedHashMap<>();
        form.put("scope", "openid scope_all");
        form.put("acr_values", "eidas1");
        form.put("login_hint", nationalId);
        form.put("binding_message", "LPS Java");
        Map<String, Object> started = call(cibaEndpoint, form, true);
        String reqId = Json.str(started, "auth_req_id");
        if (reqId == null) {
            throw new LpsException(LpsException.Kind.AUTHENTICATION_FAILED, "CIBA refused: " + Json.str(started, "error"));
        }
        long interval = Math.max(1, Json.num(started, "interval", 5)) * 1000L;
        long deadline = System.currentTimeMillis() + Json.num(started, "expires_in", 120) * 1000L;
        while (System.currentTimeMillis() < deadline) {
            sleep(interval);
            Map<String, String> poll = new LinkedHashMap<>();
            poll.put("grant_type", "urn:openid:params:grant-type:ciba");
            poll.put("auth_req_id", reqId);
            Map<String, Object> r = call(tokenEndpoint, poll, true);
            String error = Json.str(r, "error");
            if (error == null) {
                keep(r);
                return;
            }
            if (error.equals("slow_down")) {
                interval += 1000;
            } else if (!error.equals("authorization_pending")) {
                throw new LpsException(LpsException.Kind.AUTHENTICATION_FAILED, "CIBA: " + error);
            }
        }
        throw new LpsException(LpsException.Kind.AUTHENTICATION_FAILED, "CIBA: the professional did not answer in time");
    }

    private void keep(Map<String, Object> r) {
        access = Json.str(r, "access_token");
        String rotated = Json.str(r, "refresh_token");
        if (rotated != null) {
            refresh = rotated;
        }
        expiresAtMillis = System.currentTimeMillis() + Json.num(r, "expires_in", 60) * 1000L;
    }

    private static void sleep(long millis) throws LpsException {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new LpsException(LpsException.Kind.NETWORK, "interrupted");
        }
    }

    /** A usable access token: refreshed when less than a quarter of its life (at most 30 s) is left. */
    synchronized String token() throws LpsException {
        if (refresh == null) {
            login();
        }
        long margin = Math.min(30_000L, Math.max(1_000L, (expiresAtMillis - System.currentTimeMillis()) / 4));
        if (access == null || System.currentTimeMillis() > expiresAtMillis - margin) {
            refresh();
        }
        return access;
    }

    /** Drops the current access token and gets a new one (after [AUTHENTICATIONFAILED], ECO.1.2.1). */
    synchronized String fresh() throws LpsException {
        access = null;
        refresh();
        return access;
    }

    /** Refreshes now; PSC_ENDED when the PSC session is over (invalid_grant), the LPS must then close all. */
    synchronized void refresh() throws LpsException {
        if (refresh == null) {
            throw new LpsException(LpsException.Kind.PSC_ENDED, "not logged in to Pro Santé Connect");
        }
        discover();
        Map<String, String> form = new LinkedHashMap<>();
        form.put("grant_type", "refresh_token");
        form.put("refresh_token", refresh);
        Map<String, Object> r = call(tokenEndpoint, form, true);
        String error = Json.str(r, "error");
        if (error == null) {
            keep(r);
            return;
        }
        if (error.equals("invalid_grant")) {
            access = null;
            refresh = null;
            throw new LpsException(LpsException.Kind.PSC_ENDED, "the PSC session is over (invalid_grant)");
        }
        throw new LpsException(LpsException.Kind.UNAVAILABLE, "PSC refresh refused: " + error);
    }

    /** Forgets every token (end of the PSC session or of the LPS). */
    synchronized void forget() {
        access = null;
        refresh = null;
    }
}
