package lps;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The LPS's mail logic for one BAL: one IMAP session kept open, submissions, Sent copies, reading, read
 * receipts, traces, and the reactions Référentiel #2 asks for:
 *
 * <ul>
 * <li>[AUTHENTICATIONFAILED] / 535: a fresh PSC token (refresh grant) and one more try; APP: one more try;</li>
 * <li>[AUTHORIZATIONFAILED]: never retry (RFC 5530 §3);</li>
 * <li>[UNAVAILABLE] / 454: retry later, with a growing delay, never in a tight loop (ECO.1.2.3);</li>
 * <li>BYE or a dropped connection: reopen on its own while the PSC session is valid (ECO.1.2.7);</li>
 * <li>end of the PSC session (the refresh token is refused): close every session (ECO.1.2.6);</li>
 * <li>an operator certificate that fails the checks: stop before any credential (ECO.1.1.x).</li>
 * </ul>
 */
final class Lps implements AutoCloseable {
    /**
     * What a {@code send} step asks for: recipients, or a patient (the address built from the INS, ECO.2.2.6) or
     * a professional to find in the Annuaire Santé (ECO.3.1.4); a document; a read receipt; delivery
     * notifications; the message replied to; X-MSS-MES: FIN.
     */
    record Request(List<String> to, String document, boolean mdn, Map<String, Object> dsn, String replyTo,
                   Map<String, Object> patient, Map<String, Object> lookup, boolean endOfExchange) {
    }

    /** Timing, in milliseconds. */
    record Tuning(long keepalive, long pscCheck, long backoff, long backoffMax, int timeout) {
    }

    private final Map<String, Object> info;
    private final String bal;
    private final boolean psc;
    private final Set<String> breaks;
    private final Tuning tuning;
    private final Dns dns;
    private final Trust trust;
    private final Psc tokens;
    private final String author;
    private final Traces traces;
    private final String nil;
    private final String label;
    /** References of the messages read, by Message-ID, to thread a reply (bounded). */
    private final Map<String, String> threads = new java.util.LinkedHashMap<>(16, 0.75f, false) {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<String, String> eldest) {
            return size() > 1000;
        }
    };
    private final Object lock = new Object();
    private final List<byte[]> pendingMdns = new ArrayList<>();
    private final Thread watcher;
    private volatile boolean stopped;
    private Imap imap;
    private boolean want;
    private long nextTry;
    private long delay;

    Lps(Map<String, Object> info, String bal, boolean psc, Path traceFile, String nil, Set<String> breaks, Tuning tuning)
            throws LpsException {
        this.info = info;
        this.bal = bal;
        this.psc = psc;
        this.breaks = breaks;
        this.tuning = tuning;
        this.delay = tuning.backoff();
        Map<String, Object> entry = null;
        for (Object b : Json.list(info, "bals")) {
            if (bal.equalsIgnoreCase(Json.str(b, "address"))) {
                @SuppressWarnings("unchecked")
                Map<String, Object> m = (Map<String, Object>) b;
                entry = m;
            }
        }
        if (entry == null) {
            throw new LpsException(LpsException.Kind.CONFIG, bal + " is not a BAL of this sandbox");
        }
        Map<String, Object> d = Json.obj(info, "dns");
        this.dns = new Dns(Json.str(d, "host"), Json.num(d, "port", 53));
        Path cert = psc || Json.str(entry, "cert") == null ? null : Path.of(Json.str(entry, "cert"));
        Path key = cert == null ? null : Path.of(Json.str(entry, "key"));
        this.trust = new Trust(info, cert, key, !breaks.contains("no-cert-check"), !breaks.contains("no-sni"));
        if (psc) {
            List<Object> holders = Json.list(entry, "holders");
            if (holders.isEmpty()) {
                throw new LpsException(LpsException.Kind.CONFIG, bal + " has no holder: not a BAL PER/ORG");
            }
            this.tokens = new Psc(info, String.valueOf(holders.get(0)));
            this.author = tokens.nationalId();
            this.label = label(info, entry, String.valueOf(holders.get(0)));
        } else {
            this.tokens = null;
            this.author = Json.str(entry, "structure_id");
            this.label = "DPI - LPS Java";
        }
        this.traces = new Traces(traceFile);
        this.nil = breaks.contains("no-nil") ? null : nil;
        this.watcher = new Thread(this::watch, "lps-watcher");
        this.watcher.setDaemon(true);
        this.watcher.start();
    }

    String bal() {
        return bal;
    }

    /**
     * The sender label (ECO.2.2.7): a BAL PER names its holder (prénom NOM, from sandbox.json
     * {@code professionals}; a real LPS takes it from the Annuaire Santé), a BAL ORG its function.
     */
    private static String label(Map<String, Object> info, Map<String, Object> entry, String holder) {
        if ("PER".equals(Json.str(entry, "kind"))) {
            for (Object p : Json.list(info, "professionals")) {
                if (holder.equals(Json.str(p, "national_id"))) {
                    return Json.str(p, "given_name") + " " + Json.str(p, "family_name") + " - LPS Java";
                }
            }
        }
        return "Secrétariat - LPS Java";
    }

    private void trace(String action, String request, String response, boolean ok) {
        traces.write(author, bal, action, request, response, ok);
    }

    private int priority() {
        return psc ? 10 : 20; // EX_LPS_0300: PSC front for PER/ORG, AUTH_CLI front for APP
    }

    private String domain() {
        return Json.str(info, "domain");
    }

    /** The SASL exchange of the BAL: XOAUTH2 with a PSC token (PER/ORG), PLAIN with the BAL address (APP). */
    private interface Login {
        void run(String mechanism, String response) throws LpsException;
    }

    private void authenticate(Login login) throws LpsException {
        if (psc) {
            String token = tokens.token(); // CIBA login first when the professional is not logged in
            try {
                login.run("XOAUTH2", xoauth2(token));
            } catch (LpsException ex) {
                if (ex.kind() != LpsException.Kind.AUTHENTICATION_FAILED) {
                    throw ex;
                }
                login.run("XOAUTH2", xoauth2(tokens.fresh())); // one more try, with a new token (ECO.1.2.1)
            }
        } else {
            String plain = "\0" + bal + "\0";
            try {
                login.run("PLAIN", plain);
            } catch (LpsException ex) {
                if (ex.kind() != LpsException.Kind.AUTHENTICATION_FAILED) {
                    throw ex;
                }
                login.run("PLAIN", plain); // at most one more try, then report (no loop)
            }
        }
    }

    /** The XOAUTH2 initial response (user = the BAL address, ANS webinar): never logged nor traced. */
    private String xoauth2(String token) {
        return "user=" + bal + "\u0001auth=Bearer " + token + "\u0001\u0001";
    }

    /** The professional logs in with PSC first (CIBA, when not logged in yet): then the LPS connects. */
    private void loggedIn() throws LpsException {
        if (psc) {
            tokens.token();
        }
    }

    /** At start: the professional logs in now rather than at the first connection (errors wait for it). */
    void start() {
        if (psc) {
            try {
                tokens.token();
            } catch (LpsException ex) {
                System.err.println("PSC : connexion différée (" + ex.getMessage() + ")");
            }
        }
    }

    private Imap openImap() throws LpsException {
        loggedIn();
        Dns.Endpoint ep = dns.discover("imap", domain(), priority());
        Imap session = new Imap(new Wire(ep, tuning.timeout()));
        try {
            session.capabilities();
            session.startTls(trust, false);
            authenticate((mech, response) -> session.authenticate(mech, response));
        } catch (LpsException ex) {
            trace("authenticate", "IMAP " + ep.host() + " AUTHENTICATE " + (psc ? "XOAUTH2" : "PLAIN"), ex.getMessage(), false);
            session.close();
            throw ex;
        }
        String version = session.wire().sslSocket().getSession().getProtocol();
        trace("authenticate", "IMAP " + ep.host() + " AUTHENTICATE " + (psc ? "XOAUTH2" : "PLAIN"), "OK (" + version + ")", true);
        return session;
    }

    /** Opens the IMAP session; on failure, decides when (or whether) the watcher tries again. */
    private void reopen() throws LpsException {
        try {
            imap = openImap();
            delay = tuning.backoff();
        } catch (LpsException ex) {
            failed(ex);
            throw ex;
        }
    }

    private void failed(LpsException ex) {
        switch (ex.kind()) {
            case UNAVAILABLE, NETWORK -> {
                nextTry = System.currentTimeMillis() + delay; // later, spaced out (ECO.1.2.3)
                delay = Math.min(delay * 2, tuning.backoffMax());
            }
            case PSC_ENDED -> closeAll();
            default -> want = false; // refused, not authorised, untrusted: a person must look
        }
    }

    /** Has an authenticated IMAP session on the BAL, kept alive; {@code fresh}: reconnect first. */
    void openSession(boolean fresh) throws LpsException {
        synchronized (lock) {
            if (fresh) {
                logout();
            }
            want = true;
            if (imap == null) {
                reopen();
            }
        }
    }

    private Imap session() throws LpsException {
        if (imap == null) {
            imap = openImap();
            want = true;
        }
        return imap;
    }

    private void logout() {
        Imap s = imap;
        imap = null;
        if (s != null) {
            s.logout();
            trace("logout", "IMAP LOGOUT", "BYE", true);
        }
    }

    /** Closes every session and stops reconnecting (end of the PSC session, ECO.1.2.6). */
    void closeAll() {
        synchronized (lock) {
            want = false;
            logout();
        }
    }

    private Smtp.Reply submit(String from, List<String> to, byte[] message) throws LpsException {
        return submit(from, to, message, null);
    }

    /** An authenticated submission session on the BAL's front (EHLO, STARTTLS, EHLO, AUTH). */
    private Smtp openSmtp() throws LpsException {
        loggedIn();
        Dns.Endpoint ep = dns.discover("submission", domain(), priority());
        Smtp smtp = new Smtp(new Wire(ep, tuning.timeout()));
        try {
            smtp.hello();
            smtp.startTls(trust, false);
            authenticate((mech, response) -> smtp.authenticate(mech, response, breaks.contains("auth-line")));
        } catch (LpsException ex) {
            trace("authenticate", "SMTP " + ep.host() + " AUTH " + (psc ? "XOAUTH2" : "PLAIN"), ex.getMessage(), false);
            smtp.close();
            throw ex;
        }
        trace("authenticate", "SMTP " + ep.host() + " AUTH " + (psc ? "XOAUTH2" : "PLAIN"), "235 OK", true);
        return smtp;
    }

    private Smtp.Reply submit(String from, List<String> to, byte[] message, Map<String, Object> dsn) throws LpsException {
        Smtp smtp = openSmtp();
        try {
            return smtp.send(from, to, message, dsn);
        } finally {
            smtp.quit();
        }
    }

    /**
     * Sends a message (a document in IHE_XDM.ZIP with its PDF/A-1 when asked) and files it in Sent (IMAP APPEND).
     * A patient is written to at {@code <INS>@patient.mssante.fr} (ECO.2.2.6); a professional given by name
     * and identifier is first looked up in the Annuaire Santé (ECO.3.1.4).
     */
    void send(Request q) throws LpsException {
        List<String> to = new ArrayList<>(q.to());
        String subject = "Message de l'LPS Java d'exemple";
        if (q.patient() != null) {
            String ins = Json.str(q.patient(), "ins");
            if (ins == null || !ins.matches("[0-9A-Za-z]{15}")) {
                throw new LpsException(LpsException.Kind.CONFIG, "INS du patient invalide : " + ins);
            }
            to = List.of(ins + "@" + Received.PATIENT_DOMAIN);
            subject = "Message de votre professionnel de santé";
        }
        if (q.lookup() != null) {
            String found = new Annuaire(info).personalMailbox(Json.str(q.lookup(), "national_id"),
                Json.str(q.lookup(), "family_name"));
            trace("search", "Annuaire Santé Practitioner?identifier=" + Json.str(q.lookup(), "national_id"), found, true);
            to = List.of(found);
        }
        if (to.isEmpty()) {
            throw new LpsException(LpsException.Kind.CONFIG, "aucun destinataire");
        }
        Mime.ReplyTo replyTo = null;
        if (q.replyTo() != null) {
            synchronized (lock) {
                replyTo = new Mime.ReplyTo(q.replyTo(), threads.get(q.replyTo()));
            }
        }
        Documents.Document doc = q.document() == null ? null : Documents.build(Documents.Kind.of(q.document()));
        if (doc != null && breaks.contains("plain-pdf")) { // the broken variant: a PDF that is not PDF/A-1
            doc = new Documents.Document(doc.kind(), doc.archive(), doc.actDate(), Documents.plainPdf());
        }
        String id = Mime.messageId(bal);
        byte[] raw = Mime.compose(new Mime.Outgoing(bal, label, to, subject,
            "Bonjour,\r\n\r\nMessage envoyé par le LPS Java d'exemple (bac à sable MSSanté).\r\n",
            q.mdn() && !breaks.contains("no-mdn"), doc, nil, replyTo, q.endOfExchange()), id);
        String request = "MAIL FROM:<" + bal + "> RCPT TO:<" + String.join(",", to) + "> " + id;
        Smtp.Reply reply;
        try {
            reply = submit(bal, to, raw, q.dsn());
        } catch (LpsException ex) {
            trace("send", request, ex.getMessage(), false);
            throw ex;
        }
        trace("send", request, reply.toString(), true);
        synchronized (lock) {
            Imap.Reply r = session().append("Sent", "\\Seen", raw);
            trace("append", "APPEND Sent " + id, r.tagged(), r.ok());
        }
    }

    private static String mailbox(String folder) {
        return folder != null && folder.matches("[A-Za-z0-9._/-]{1,100}") ? folder : "INBOX";
    }

    private Imap selected(String folder) throws LpsException {
        Imap s = session();
        String mailbox = mailbox(folder);
        Imap.Reply sel = s.command("SELECT " + mailbox);
        trace("select", "SELECT " + mailbox, sel.tagged(), sel.ok());
        if (!sel.ok()) {
            throw new LpsException(LpsException.Kind.CONFIG, "SELECT " + mailbox + " refused: " + sel.tagged());
        }
        return s;
    }

    private static List<String> uids(Imap.Reply search) {
        List<String> uids = new ArrayList<>();
        for (String line : search.untagged()) {
            if (line.toUpperCase().startsWith("* SEARCH")) {
                for (String uid : line.substring(8).trim().split("\\s+")) {
                    if (uid.matches("\\d+")) {
                        uids.add(uid);
                    }
                }
            }
        }
        return uids;
    }

    /**
     * Fetches and reads the new messages of the folder (BODY[], which marks them \Seen) and says what it
     * understood of each (patient, documents, subject shown, sender kind: {@link Received}).
     */
    List<Map<String, Object>> readNew(String folder) throws LpsException {
        List<Map<String, Object>> understood = new ArrayList<>();
        synchronized (lock) {
            Imap s = selected(folder);
            Imap.Reply search = s.command("UID SEARCH UNSEEN");
            trace("search", "UID SEARCH UNSEEN", search.tagged(), search.ok());
            for (String uid : uids(search)) {
                Imap.Reply fetched = s.command("UID FETCH " + uid + " (BODY[])");
                trace("fetch", "UID FETCH " + uid + " (BODY[])", fetched.tagged(), fetched.ok());
                if (fetched.literals().isEmpty()) {
                    continue;
                }
                byte[] raw = fetched.literals().get(0);
                Map<String, String> h = Mime.headers(raw);
                String type = h.getOrDefault("content-type", "").toLowerCase();
                if (h.containsKey("disposition-notification-to") && !type.contains("multipart/report")) {
                    pendingMdns.add(raw);
                }
                String id = h.getOrDefault("message-id", "");
                if (!id.isEmpty()) {
                    threads.put(id, h.getOrDefault("references", h.getOrDefault("in-reply-to", "")));
                }
                if (understood.size() < 50) { // the acknowledgement holds at most 50 (events schema)
                    understood.add(Received.understand(raw));
                }
            }
        }
        return understood;
    }

    /**
     * Deletes the message with this Message-ID: UID SEARCH HEADER Message-ID, UID STORE +FLAGS (\Deleted),
     * then UID EXPUNGE (RFC 4315, UIDPLUS) or EXPUNGE.
     */
    int delete(String folder, String messageId) throws LpsException {
        if (messageId == null || !messageId.matches("<[!-~&&[^<>\"\\\\]]{1,500}>")) {
            throw new LpsException(LpsException.Kind.CONFIG, "Message-ID invalide : " + messageId);
        }
        synchronized (lock) {
            Imap s = selected(folder);
            String query = "UID SEARCH HEADER Message-ID \"" + messageId + "\"";
            Imap.Reply search = s.command(query);
            trace("search", query, search.tagged(), search.ok());
            List<String> uids = uids(search);
            if (uids.isEmpty()) {
                trace("delete", "DELETE " + messageId, "introuvable", false);
                throw new LpsException(LpsException.Kind.CONFIG, "message " + messageId + " introuvable");
            }
            String set = String.join(",", uids);
            Imap.Reply stored = s.command("UID STORE " + set + " +FLAGS.SILENT (\\Deleted)");
            trace("delete", "UID STORE " + set + " +FLAGS (\\Deleted) " + messageId, stored.tagged(), stored.ok());
            String expunge = s.capabilitiesText().contains("UIDPLUS") ? "UID EXPUNGE " + set : "EXPUNGE";
            Imap.Reply done = s.command(expunge);
            trace("expunge", expunge, done.tagged(), done.ok());
            if (!stored.ok() || !done.ok()) {
                throw new LpsException(LpsException.Kind.CONFIG, "suppression refusée : " + done.tagged());
            }
            return uids.size();
        }
    }

    /** Sends the read receipts the messages read asked for (RFC 8098, ECO.3.1.6). */
    int answerMdns() throws LpsException {
        List<byte[]> todo;
        synchronized (lock) {
            todo = new ArrayList<>(pendingMdns);
            pendingMdns.clear();
        }
        if (breaks.contains("no-mdn")) {
            return 0;
        }
        for (byte[] original : todo) {
            Map<String, String> h = Mime.headers(original);
            String to = Mime.address(h.getOrDefault("disposition-notification-to", ""));
            String id = Mime.messageId(bal);
            byte[] mdn = Mime.mdn(bal, label, h, id, nil, original);
            String request = "MDN " + id + " pour " + h.getOrDefault("message-id", "?") + " RCPT TO:<" + to + ">";
            try {
                Smtp.Reply reply = submit(bal, List.of(to), mdn);
                trace("send", request, reply.toString(), true);
            } catch (LpsException ex) {
                trace("send", request, ex.getMessage(), false);
                throw ex;
            }
        }
        return todo.size();
    }

    /** Keeps the IMAP session (NOOP), reopens it, and watches the PSC session. */
    private void watch() {
        long lastCheck = System.currentTimeMillis();
        while (!stopped) {
            try {
                Thread.sleep(tuning.keepalive());
            } catch (InterruptedException ex) {
                return;
            }
            if (psc && tokens.loggedIn() && System.currentTimeMillis() - lastCheck >= tuning.pscCheck()) {
                lastCheck = System.currentTimeMillis();
                try {
                    tokens.refresh();
                } catch (LpsException ex) {
                    if (ex.kind() == LpsException.Kind.PSC_ENDED) {
                        System.err.println("PSC : session terminée, fermeture de toutes les sessions (ECO.1.2.6)");
                        closeAll();
                    }
                }
            }
            synchronized (lock) {
                if (imap != null) {
                    try {
                        imap.command("NOOP");
                        continue;
                    } catch (LpsException ex) {
                        imap.close();
                        imap = null;
                        trace("disconnect", "IMAP NOOP", ex.getMessage(), false);
                    }
                }
                if (!want || System.currentTimeMillis() < nextTry || stopped) {
                    continue;
                }
                if (psc && !tokens.loggedIn()) {
                    want = false;
                    continue;
                }
                try {
                    reopen();
                } catch (LpsException ex) {
                    // failed() set the next try, or stopped the reconnections
                }
            }
        }
    }

    @Override
    public void close() {
        stopped = true;
        watcher.interrupt();
        closeAll();
        if (tokens != null) {
            tokens.forget();
        }
    }

    /** Installation check: IMAP and SMTP logins on the BAL's front, one line each. */
    List<String> probe() throws LpsException {
        List<String> out = new ArrayList<>();
        synchronized (lock) {
            Imap s = session();
            out.add("IMAP " + s.wire().endpoint.host() + ":" + s.wire().endpoint.port() + " "
                + s.wire().sslSocket().getSession().getProtocol() + " " + s.wire().sslSocket().getSession().getCipherSuite()
                + " " + (psc ? "XOAUTH2" : "PLAIN") + " OK");
        }
        Smtp smtp = openSmtp();
        try {
            Dns.Endpoint ep = smtp.wire().endpoint;
            out.add("SMTP " + ep.host() + ":" + ep.port() + " " + smtp.wire().sslSocket().getSession().getProtocol() + " "
                + smtp.wire().sslSocket().getSession().getCipherSuite() + " " + (psc ? "XOAUTH2" : "PLAIN") + " OK");
        } finally {
            smtp.quit();
        }
        trace("connect", "probe " + bal, "OK", true);
        return out;
    }
}
