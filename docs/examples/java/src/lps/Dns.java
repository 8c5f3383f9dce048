package lps;

import java.util.ArrayList;
import java.util.Hashtable;
import java.util.List;
import javax.naming.Context;
import javax.naming.NamingEnumeration;
import javax.naming.NamingException;
import javax.naming.directory.Attribute;
import javax.naming.directory.Attributes;
import javax.naming.directory.DirContext;
import javax.naming.directory.InitialDirContext;

/**
 * DNS through the sandbox's server only (JNDI's DNS provider, the JDK's own): SRV autoconfiguration
 * (RFC 6186, EX_LPS_0300) and the A record of the chosen target.
 */
final class Dns {
    /** A front found through SRV: the target name (the TLS reference identifier), its address, its port. */
    record Endpoint(String host, String address, int port) {
    }

    private final String server;

    Dns(String host, long port) {
        this.server = "dns://" + host + ":" + port;
    }

    private DirContext context() throws NamingException {
        Hashtable<String, String> env = new Hashtable<>();
        env.put(Context.INITIAL_CONTEXT_FACTORY, "com.sun.jndi.dns.DnsContextFactory");
        env.put(Context.PROVIDER_URL, server);
        env.put("com.sun.jndi.dns.timeout.initial", "2000");
        env.put("com.sun.jndi.dns.timeout.retries", "2");
        return new InitialDirContext(env);
    }

    private List<String> lookup(String name, String type) throws LpsException {
        try {
            DirContext ctx = context();
            try {
                Attributes attrs = ctx.getAttributes(name.endsWith(".") ? name : name + ".", new String[] {type});
                Attribute attr = attrs.get(type);
                List<String> out = new ArrayList<>();
                if (attr != null) {
                    NamingEnumeration<?> values = attr.getAll();
                    while (values.hasMore()) {
                        out.add(values.next().toString());
                    }
                }
                return out;
            } finally {
                ctx.close();
            }
        } catch (NamingException ex) {
            throw new LpsException(LpsException.Kind.NETWORK, "DNS " + type + " " + name + ": " + ex.getMessage());
        }
    }

    /**
     * {@code _<service>._tcp.<domain>} SRV records of {@code priority} (10: PSC front for BAL PER/ORG,
     * 20: AUTH_CLI front for BAL APP), the heaviest first, then the target's address.
     */
    Endpoint discover(String service, String domain, int priority) throws LpsException {
        String best = null;
        int bestWeight = -1;
        for (String record : lookup("_" + service + "._tcp." + domain, "SRV")) {
            String[] f = record.trim().split("\\s+"); // priority weight port target
            if (f.length == 4 && Integer.parseInt(f[0]) == priority && Integer.parseInt(f[1]) > bestWeight) {
                bestWeight = Integer.parseInt(f[1]);
                best = record.trim();
            }
        }
        if (best == null) {
            throw new LpsException(LpsException.Kind.CONFIG,
                "no SRV record of priority " + priority + " for _" + service + "._tcp." + domain);
        }
        String[] f = best.split("\\s+");
        String target = f[3].endsWith(".") ? f[3].substring(0, f[3].length() - 1) : f[3];
        List<String> addresses = lookup(target, "A");
        if (addresses.isEmpty()) {
            throw new LpsException(LpsException.Kind.CONFIG, "no A record for " + target);
        }
        return new Endpoint(target, addresses.get(0), Integer.parseInt(f[2]));
    }
}
