package lps;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.RandomAccessFile;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The LPS Java d'exemple: configured only from the sandbox's {@code sandbox.json}, driven only by the
 * conformance suite's event stream ({@code mssante conformance run --events FILE|-}).
 *
 * <pre>
 * java -cp build lps.Main --sandbox .sandbox/sandbox.json --events api --trace traces.jsonl
 * java -cp build lps.Main --sandbox .sandbox/sandbox.json --events events.jsonl --trace traces.jsonl
 * java -cp build lps.Main --sandbox .sandbox/sandbox.json --probe --bal marie.curie@mss.sandbox.test
 * </pre>
 *
 * <p>The events come from the sandbox API ({@code api}), a file followed as it grows, or standard input
 * ({@code -}). Each {@code step} event is performed, then acknowledged by a POST to its {@code ack.url}; the
 * {@code end} event stops the LPS. A deliberately broken variant is selected with {@code --break} (or the
 * system property {@code lps.break}): {@code no-nil}, {@code no-mdn}, {@code no-cert-check}, {@code auth-line},
 * {@code no-sni}.
 */
public final class Main {
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    private Main() {
    }

    private static void usage(String why) {
        System.err.println("erreur : " + why);
        System.err.println("usage : java -cp build lps.Main --sandbox FICHIER [--events FICHIER|-|api] [--trace FICHIER]\n"
            + "          [--nil REFERENCE] [--break no-nil,no-mdn,no-cert-check,auth-line,no-sni] [--probe --bal ADRESSE]\n"
            + "          [--keepalive MS] [--psc-check MS] [--backoff MS] [--backoff-max MS]");
        System.exit(2);
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--probe")) {
                opt.put("probe", "yes");
            } else if (a.startsWith("--") && i + 1 < args.length) {
                opt.put(a.substring(2), args[++i]);
            } else {
                usage("argument inattendu : " + a);
            }
        }
        if (!opt.containsKey("sandbox")) {
            usage("--sandbox est obligatoire (le sandbox.json du bac à sable)");
        }
        Object parsed;
        try {
            parsed = Json.parse(Files.readString(Path.of(opt.get("sandbox")), StandardCharsets.UTF_8));
        } catch (IOException | IllegalArgumentException ex) {
            System.err.println("erreur : sandbox.json illisible : " + ex.getMessage());
            System.exit(2);
            return;
        }
        if (!(parsed instanceof Map)) {
            usage("sandbox.json n'est pas un objet JSON");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> info = (Map<String, Object>) parsed;
        List<String> missing = missing(info);
        if (!missing.isEmpty()) {
            usage("sandbox.json incomplet (bac à sable d'une autre version ?) : " + String.join(", ", missing));
        }
        Set<String> breaks = new HashSet<>();
        for (String b : (opt.getOrDefault("break", System.getProperty("lps.break", ""))).split(",")) {
            if (!b.isBlank()) {
                breaks.add(b.trim());
            }
        }
        if (!BREAKS.containsAll(breaks)) {
            usage("--break accepte " + String.join(", ", BREAKS) + " ; reçu : " + String.join(",", breaks));
        }
        Lps.Tuning tuning = null;
        try {
            tuning = new Lps.Tuning(
                millis(opt, "keepalive", "1000"), millis(opt, "psc-check", "5000"),
                millis(opt, "backoff", "1500"), millis(opt, "backoff-max", "30000"), 10_000);
        } catch (NumberFormatException ex) {
            usage("--keepalive, --psc-check, --backoff et --backoff-max attendent un nombre de millisecondes > 0");
        }
        Path trace = opt.containsKey("trace") ? Path.of(opt.get("trace")) : null;
        String nil = opt.getOrDefault("nil", "LPSJAVA001");
        if (opt.containsKey("probe")) {
            String bal = opt.get("bal");
            if (bal == null) {
                usage("--probe demande --bal");
            }
            System.exit(probe(info, bal, trace, nil, breaks, tuning));
        }
        System.exit(drive(info, opt.getOrDefault("events", "-"), trace, nil, breaks, tuning));
    }

    /** The broken variants this LPS knows. */
    private static final List<String> BREAKS = List.of("no-nil", "no-mdn", "no-cert-check", "auth-line", "no-sni",
        "plain-pdf");

    private static long millis(Map<String, String> opt, String name, String fallback) {
        long value = Long.parseLong(opt.getOrDefault(name, fallback));
        if (value <= 0) {
            throw new NumberFormatException(name);
        }
        return value;
    }

    /** The keys of sandbox.json this LPS needs and does not find. */
    private static List<String> missing(Map<String, Object> info) {
        List<String> out = new ArrayList<>();
        for (String key : new String[] {"domain", "ca_bundle", "api_url"}) {
            if (Json.str(info, key) == null) {
                out.add(key);
            }
        }
        if (Json.str(Json.obj(info, "dns"), "host") == null || Json.num(Json.obj(info, "dns"), "port", -1) <= 0) {
            out.add("dns.host/dns.port");
        }
        for (String key : new String[] {"discovery_url", "client_id", "client_secret"}) {
            if (Json.str(Json.obj(info, "psc"), key) == null) {
                out.add("psc." + key);
            }
        }
        if (Json.list(info, "bals").isEmpty()) {
            out.add("bals");
        }
        return out;
    }

    private static boolean isPsc(Map<String, Object> info, String bal) {
        for (Object b : Json.list(info, "bals")) {
            if (bal.equalsIgnoreCase(Json.str(b, "address"))) {
                return !"APP".equals(Json.str(b, "kind"));
            }
        }
        return true;
    }

    private static int probe(Map<String, Object> info, String bal, Path trace, String nil, Set<String> breaks,
                             Lps.Tuning tuning) {
        try (Lps lps = new Lps(info, bal, isPsc(info, bal), trace, nil, breaks, tuning)) {
            for (String line : lps.probe()) {
                System.out.println(line);
            }
            return 0;
        } catch (LpsException ex) {
            System.err.println("échec (" + ex.kind() + ") : " + ex.getMessage());
            return 1;
        }
    }

    /** The lines of the event stream: stdin, or a file followed as it grows, until the {@code end} event. */
    private interface Lines {
        String next() throws IOException, InterruptedException;
    }

    private static Lines open(String events, Map<String, Object> info) throws IOException {
        if (events.equals("api")) {
            return follow(Json.str(info, "api_url"));
        }
        if (events.equals("-")) {
            BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            return r::readLine;
        }
        Path path = Path.of(events);
        long deadline = System.currentTimeMillis() + 60_000;
        while (!Files.exists(path)) {
            if (System.currentTimeMillis() > deadline) {
                throw new IOException("le flux d'événements " + events + " n'est pas apparu en 60 s");
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException ex) {
                throw new IOException("interrompu");
            }
        }
        RandomAccessFile file = new RandomAccessFile(path.toFile(), "r");
        java.io.ByteArrayOutputStream partial = new java.io.ByteArrayOutputStream();
        return () -> {
            while (true) {
                int b = file.read();
                if (b < 0) {
                    Thread.sleep(50); // follow the file as the suite appends to it
                    continue;
                }
                if (b == '\n') {
                    String line = partial.toString(StandardCharsets.UTF_8);
                    partial.reset();
                    return line;
                }
                partial.write(b);
            }
        };
    }

    /**
     * The same stream from the sandbox API: {@code GET /api/conformance/events?after=N&wait=S&format=jsonl}
     * (long poll, the next cursor in {@code X-Next}), from the runs started after the LPS.
     */
    private static Lines follow(String api) throws IOException {
        if (api == null) {
            throw new IOException("sandbox.json has no api_url");
        }
        java.util.ArrayDeque<String> queue = new java.util.ArrayDeque<>();
        long[] cursor = {Long.MAX_VALUE / 2};
        Lines poll = () -> {
            while (queue.isEmpty()) {
                HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(
                        URI.create(api + "/conformance/events?format=jsonl&wait=30&after=" + cursor[0]))
                    .timeout(Duration.ofSeconds(40)).GET().build(), HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() != 200) {
                    throw new IOException("GET /api/conformance/events: HTTP " + r.statusCode());
                }
                cursor[0] = Long.parseLong(r.headers().firstValue("X-Next").orElse(Long.toString(cursor[0])));
                for (String line : r.body().split("\n")) {
                    if (!line.isBlank()) {
                        queue.add(line);
                    }
                }
            }
            return queue.poll();
        };
        try {
            HttpResponse<String> now = HTTP.send(HttpRequest.newBuilder(
                    URI.create(api + "/conformance/events?format=jsonl&after=" + cursor[0])).GET().build(),
                HttpResponse.BodyHandlers.ofString());
            cursor[0] = Long.parseLong(now.headers().firstValue("X-Next").orElse("0"));
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new IOException("interrompu");
        }
        return poll;
    }

    private static int drive(Map<String, Object> info, String events, Path trace, String nil, Set<String> breaks,
                             Lps.Tuning tuning) throws IOException, InterruptedException {
        Lines lines = open(events, info);
        System.err.println("LPS prêt : en attente des étapes de la campagne (" + events + ")");
        Lps lps = null;
        String line;
        int exit = 0;
        try {
            while ((line = lines.next()) != null) {
                Object parsed;
                try {
                    parsed = Json.parse(line.trim());
                } catch (IllegalArgumentException ex) {
                    continue; // not an event (a line for people)
                }
                if (!(parsed instanceof Map)) {
                    continue;
                }
                @SuppressWarnings("unchecked")
                Map<String, Object> ev = (Map<String, Object>) parsed;
                String type = String.valueOf(ev.get("type"));
                switch (type) {
                    case "run" -> {
                        if (lps != null) {
                            lps.close();
                        }
                        String bal = Json.str(ev, "bal");
                        boolean psc = !"app".equalsIgnoreCase(Json.str(ev, "profile"));
                        System.err.println("campagne " + Json.str(ev, "profile") + " sur la BAL " + bal);
                        try {
                            lps = new Lps(info, bal, psc, trace, nil, breaks, tuning);
                            lps.start();
                        } catch (LpsException ex) {
                            System.err.println("erreur de configuration : " + ex.getMessage());
                            return 2;
                        }
                    }
                    case "step" -> {
                        if (lps == null) {
                            System.err.println("étape reçue avant l'événement « run » : ignorée");
                            continue;
                        }
                        step(lps, ev);
                    }
                    case "case" -> System.err.println(Json.str(ev, "case") + " " + Json.str(ev, "title_fr"));
                    case "verdict" -> System.err.println("  " + Json.str(ev, "case") + " : " + Json.str(ev, "status_fr")
                        + " — " + Json.str(ev, "explanation"));
                    case "end" -> {
                        System.err.println("fin de campagne : " + Json.str(ev, "verdict"));
                        return exit;
                    }
                    default -> {
                        // a newer event type: ignored
                    }
                }
            }
            return exit;
        } finally {
            if (lps != null) {
                lps.close();
            }
        }
    }

    /** Performs one step, then acknowledges it (even when the LPS failed: the suite judges from the sandbox). */
    private static void step(Lps lps, Map<String, Object> ev) {
        String action = String.valueOf(ev.get("action"));
        Map<String, Object> params = Json.obj(ev, "params");
        String actor = Json.str(params, "bal");
        if (actor != null && !actor.equalsIgnoreCase(lps.bal())) {
            acknowledge(ev, "unsupported", "ce LPS gère la BAL " + lps.bal() + ", pas " + actor, null);
            return;
        }
        System.err.println("[" + Json.str(ev, "case") + "] " + action + " " + Json.write(params));
        String status = "done";
        String detail = "";
        List<Map<String, Object>> understood = null;
        try {
            switch (action) {
                case "open-session" -> lps.openSession(false);
                case "reconnect" -> lps.openSession(true);
                case "send" -> lps.send(request(params));
                case "read" -> {
                    understood = lps.readNew(Json.str(params, "folder") == null ? "INBOX" : Json.str(params, "folder"));
                    detail = understood.size() + " message(s) lu(s)";
                }
                case "delete" -> detail = lps.delete(Json.str(params, "folder"), Json.str(params, "message_id"))
                    + " message(s) supprimé(s)";
                case "reply-mdn" -> detail = lps.answerMdns() + " accusé(s) de lecture envoyé(s)";
                case "close" -> lps.closeAll();
                case "wait" -> detail = "le LPS continue de fonctionner seul";
                default -> {
                    status = "unsupported";
                    detail = "action inconnue de ce LPS : " + action;
                }
            }
        } catch (LpsException ex) {
            status = "failed";
            detail = ex.kind() + ": " + ex.getMessage();
            System.err.println("  échec : " + detail);
        } catch (RuntimeException ex) {
            status = "failed";
            detail = ex.toString();
            System.err.println("  erreur : " + detail);
        }
        acknowledge(ev, status, detail, understood);
    }

    /** The {@code send} step's parameters (conformance-events.schema.json). */
    private static Lps.Request request(Map<String, Object> params) {
        List<String> to = new ArrayList<>();
        for (Object t : Json.list(params, "to")) {
            to.add(String.valueOf(t));
        }
        return new Lps.Request(to, Json.str(params, "document"), Json.bool(params, "mdn", false), map(params, "dsn"),
            Json.str(params, "reply_to"), map(params, "patient"), map(params, "lookup"),
            Json.bool(params, "end_of_exchange", false));
    }

    private static Map<String, Object> map(Map<String, Object> params, String key) {
        return params.get(key) instanceof Map ? Json.obj(params, key) : null;
    }

    /** POST the step's acknowledgement: {@code {"ok", "detail"}}, and {@code understood} after a read. */
    private static void acknowledge(Map<String, Object> ev, String status, String detail,
                                    List<Map<String, Object>> understood) {
        Map<String, Object> ack = Json.obj(ev, "ack");
        String url = Json.str(ack, "url");
        if (url == null) {
            return;
        }
        Map<String, Object> body = new LinkedHashMap<>(); // {"ok": bool, "detail": string}
        body.put("ok", status.equals("done"));
        String text = status.equals("done") ? detail : status + " — " + detail;
        body.put("detail", text.length() <= 500 ? text : text.substring(0, 499) + "…");
        if (understood != null) {
            body.put("understood", understood);
        }
        try {
            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5))
                .header("Content-Type", "application/json")
                .method(Json.str(ack, "method") == null ? "POST" : Json.str(ack, "method"),
                    HttpRequest.BodyPublishers.ofString(Json.write(body)))
                .build(), HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() / 100 != 2) {
                System.err.println("  accusé de l'étape refusé : HTTP " + r.statusCode() + " " + r.body());
            }
        } catch (IOException ex) {
            System.err.println("  accusé de l'étape impossible : " + ex.getMessage());
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
        }
    }
}
