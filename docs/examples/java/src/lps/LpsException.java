package lps;

/** Every failure of the LPS, with whose fault it is, so the caller reacts per RFC 5530 / RFC 4954. */
public final class LpsException extends Exception {
    private static final long serialVersionUID = 1L;

    /** Whose fault, and how to react. */
    public enum Kind {
        /** [AUTHENTICATIONFAILED] / 535: the credential was refused; a fresh one may be tried once. */
        AUTHENTICATION_FAILED,
        /** [AUTHORIZATIONFAILED]: this identity has no right on the BAL; never retry. */
        AUTHORIZATION_FAILED,
        /** [UNAVAILABLE] / 454: try again later, spaced out (ECO.1.2.3). */
        UNAVAILABLE,
        /** The operator's certificate was refused (ECO.1.1.x): stop, a person must look. */
        TRUST,
        /** The PSC session is over (invalid_grant): close everything (ECO.1.2.6). */
        PSC_ENDED,
        /** Network or protocol trouble. */
        NETWORK,
        /** Bad configuration or input. */
        CONFIG
    }

    private final Kind kind;

    public LpsException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
