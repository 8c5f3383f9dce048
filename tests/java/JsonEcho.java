package lps;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/** Test helper (not part of the LPS): each stdin line parsed by {@link Json} and written back, or "ERR …". */
public final class JsonEcho {
    private JsonEcho() {
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        String line;
        while ((line = in.readLine()) != null) {
            try {
                out.println("OK " + Json.write(Json.parse(line)));
            } catch (IllegalArgumentException ex) {
                out.println("ERR " + ex.getMessage());
            }
        }
    }
}
