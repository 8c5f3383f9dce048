package lps;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Functional traces (Référentiel #2 ECO.4.1.1 / ECO.4.1.2), one JSON object per line: {@code action},
 * {@code at} (the workstation's local time, ISO 8601 with its offset), {@code author} (national id, or the
 * structure for a BAL APP), {@code bal}, {@code ok}, {@code request}, {@code response}. No message content
 * and no secret: SASL responses and tokens are never passed in, and {@link #redact} is applied anyway.
 */
final class Traces {
    private static final DateTimeFormatter AT = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSXXX");
    private static final Pattern JWT = Pattern.compile("eyJ[A-Za-z0-9_-]{4,}\\.[A-Za-z0-9_-]{4,}\\.[A-Za-z0-9_-]*");
    private static final Pattern LONG_B64 = Pattern.compile("[A-Za-z0-9+/]{60,}={0,2}");
    private final Path file;

    Traces(Path file) {
        this.file = file;
    }

    static String redact(String text) {
        String s = JWT.matcher(text).replaceAll("<redacted-jwt>");
        s = LONG_B64.matcher(s).replaceAll("<redacted>");
        s = s.replaceAll("(?i)(bearer\\s+)\\S+", "$1<redacted>");
        return s.length() <= 500 ? s : s.substring(0, 500) + "…";
    }

    synchronized void write(String author, String bal, String action, String request, String response, boolean ok) {
        if (file == null) {
            return;
        }
        Map<String, Object> rec = new LinkedHashMap<>();
        rec.put("action", action);
        rec.put("at", OffsetDateTime.now().format(AT));
        rec.put("author", author == null || author.isEmpty() ? "?" : author);
        rec.put("bal", bal);
        rec.put("ok", ok);
        rec.put("request", redact(request));
        rec.put("response", redact(response == null || response.isEmpty() ? "-" : response));
        try {
            if (!Files.exists(file)) {
                Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            }
            Files.writeString(file, Json.write(rec) + "\n", StandardCharsets.UTF_8, StandardOpenOption.APPEND);
        } catch (IOException | UnsupportedOperationException ex) {
            System.err.println("traces : écriture impossible dans " + file + " (" + ex.getMessage() + ")");
        }
    }
}
