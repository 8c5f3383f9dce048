package lps;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.HexFormat;
import java.util.List;
import java.util.UUID;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * The health documents the LPS sends: a CDA R2 document (a CR de biologie or a VSM about a test patient,
 * the LPS's own fixture), packed in an IHE XDM archive (IHE ITI-32, ZIP over e-mail: README.TXT, INDEX.HTM,
 * IHE_XDM/SUBSET01/METADATA.XML and the document), with the values the message headers need.
 */
final class Documents {
    private static final SecureRandom RANDOM = new SecureRandom();

    /** The kinds of document a step may ask for. */
    enum Kind {
        CRBIO("11502-2", "CR d'examens biologiques", "Compte rendu d'examens biologiques", "26436-6", "Examens de biologie",
            "SA25", "Laboratoire de biologie médicale", "urn:ihe:lab:xd-lab:2008", "1.3.6.1.4.1.19376.1.2.3",
            "1.3.6.1.4.1.19376.1.3.3", "1.2.250.1.213.1.1.1.55"),
        VSM("60591-5", "Synthese medicale", "Synthèse médicale", "34133-9", "Synthèse de l'épisode de soins",
            "SA07", "Cabinet individuel", "urn:asip:ci-sis:vsm:2012", "1.2.250.1.213.1.1.4.2.282",
            "1.2.250.1.213.1.1.1.13", null);

        final String loinc;
        final String display;
        final String title;
        final String eventCode;
        final String eventName;
        final String facility;
        final String facilityName;
        final String format;
        final String formatScheme;
        final String template1;
        final String template2;

        Kind(String loinc, String display, String title, String eventCode, String eventName, String facility,
             String facilityName, String format, String formatScheme, String template1, String template2) {
            this.loinc = loinc;
            this.display = display;
            this.title = title;
            this.eventCode = eventCode;
            this.eventName = eventName;
            this.facility = facility;
            this.facilityName = facilityName;
            this.format = format;
            this.formatScheme = formatScheme;
            this.template1 = template1;
            this.template2 = template2;
        }

        static Kind of(String name) {
            return "vsm".equalsIgnoreCase(name) ? VSM : CRBIO;
        }
    }

    /** The test patient of the fixture (INS-NIR test OID, never a production identity). */
    static final String FAMILY = "MARTIN";
    static final String GIVEN = "PAUL";
    static final LocalDate BIRTH = LocalDate.of(1985, 5, 14);
    static final String INS_OID = "1.2.250.1.213.1.4.10";
    static final String INS = nir("185057505612300".substring(0, 13));

    /** A document ready to attach: the archive, the CDA code and the values of the subject and the PDF name. */
    record Document(Kind kind, byte[] archive, LocalDate actDate, byte[] pdf) {
        String subject() {
            // ECO.2.1.3: XDM/1.0/DDM+<label> <NOM> <prénom> <date of birth>
            return "XDM/1.0/DDM+" + kind.display + " " + FAMILY + " " + GIVEN + " "
                + BIRTH.format(DateTimeFormatter.ofPattern("dd/MM/yyyy"));
        }

        String pdfName() {
            // ECO.2.1.6: <AAAAMMJJ>_<type>_<NOM>_<prénom>.pdf, other characters than letters and digits as "_"
            return actDate.format(DateTimeFormatter.BASIC_ISO_DATE) + "_" + kind.display.replaceAll("[^A-Za-z0-9]+", "_")
                + "_" + FAMILY + "_" + GIVEN + ".pdf";
        }
    }

    private Documents() {
    }

    /** A 13-digit NIR with its key (97 - NIR mod 97): the 15-character INS matricule. */
    static String nir(String thirteen) {
        long n = Long.parseLong(thirteen);
        return thirteen + String.format("%02d", 97 - (n % 97));
    }

    private static String oid() {
        // A UUID-derived OID (ITU-T X.667): 2.25.<the UUID as a decimal integer>
        UUID u = UUID.randomUUID();
        return "2.25." + new java.math.BigInteger(1, HexFormat.of().parseHex(u.toString().replace("-", "")));
    }

    static String xml(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }

    /** The CDA R2 document (CI-SIS header: patient with a qualified INS, author, custodian, service event). */
    static byte[] cda(Kind kind, ZonedDateTime now, String docId) {
        String ts = now.withZoneSameInstant(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyyMMddHHmmss")) + "+0000";
        String ps = "<id root=\"1.2.250.1.71.4.2.1\" extension=\"801234567897\"/>"
            + "<code code=\"G15_10/SM26\" displayName=\"Médecin - Qualifié en Médecine Générale (SM)\" codeSystem=\"1.2.250.1.213.1.1.4.5\"/>"
            + "<assignedPerson><name><given>Jeanne</given><family>TESTEUR</family></name></assignedPerson>";
        String org = "<id root=\"1.2.250.1.71.4.2.2\" extension=\"1120456789\"/><name>Cabinet de l'exemple Java</name>";
        String setting = "<standardIndustryClassCode code=\"AMBULATOIRE\" displayName=\"Ambulatoire\" codeSystem=\"1.2.250.1.213.1.1.4.9\"/>";
        String body = kind == Kind.CRBIO
            ? "<table><thead><tr><th>Examen</th><th>Résultat</th><th>Unité</th></tr></thead><tbody>"
              + "<tr><td>Glucose</td><td>5.1</td><td>mmol/L</td></tr></tbody></table>"
            : "<list><item>Pas d'allergie connue</item><item>Hypertension artérielle</item></list>";
        String x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            + "<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><realmCode code=\"FR\"/>"
            + "<typeId root=\"2.16.840.1.113883.1.3\" extension=\"POCD_HD000040\"/>"
            + "<templateId root=\"2.16.840.1.113883.2.8.2.1\"/><templateId root=\"1.2.250.1.213.1.1.1.1\"/>"
            + "<templateId root=\"" + kind.template1 + "\"/>"
            + (kind.template2 == null ? "" : "<templateId root=\"" + kind.template2 + "\"/>")
            + "<id root=\"" + docId + "\"/>"
            + "<code code=\"" + kind.loinc + "\" displayName=\"" + xml(kind.display) + "\" codeSystem=\"2.16.840.1.113883.6.1\"/>"
            + "<title>" + xml(kind.title) + "</title><effectiveTime value=\"" + ts + "\"/>"
            + "<confidentialityCode code=\"N\" displayName=\"Normal\" codeSystem=\"2.16.840.1.113883.5.25\"/>"
            + "<languageCode code=\"fr-FR\"/><setId root=\"" + docId + ".0\"/><versionNumber value=\"1\"/>"
            + "<recordTarget><patientRole><id root=\"" + INS_OID + "\" extension=\"" + INS + "\"/>"
            + "<patient classCode=\"PSN\"><name><family qualifier=\"BR\">" + FAMILY + "</family><given>" + GIVEN + "</given>"
            + "<given qualifier=\"BR\">" + GIVEN + "</given></name>"
            + "<administrativeGenderCode code=\"M\" displayName=\"Masculin\" codeSystem=\"2.16.840.1.113883.5.1\"/>"
            + "<birthTime value=\"" + BIRTH.format(DateTimeFormatter.BASIC_ISO_DATE) + "\"/>"
            + "<birthplace><place><addr><county>75056</county></addr></place></birthplace></patient></patientRole></recordTarget>"
            + "<author><time value=\"" + ts + "\"/><assignedAuthor>" + ps + "<representedOrganization>" + org
            + "</representedOrganization></assignedAuthor></author>"
            + "<custodian><assignedCustodian><representedCustodianOrganization>" + org
            + "</representedCustodianOrganization></assignedCustodian></custodian>"
            + "<legalAuthenticator><time value=\"" + ts + "\"/><signatureCode code=\"S\"/><assignedEntity>" + ps
            + "<representedOrganization>" + org + setting + "</representedOrganization></assignedEntity></legalAuthenticator>"
            + "<documentationOf><serviceEvent><code code=\"" + kind.eventCode + "\" displayName=\"" + xml(kind.eventName)
            + "\" codeSystem=\"2.16.840.1.113883.6.1\"/><effectiveTime><low value=\"" + ts + "\"/><high value=\"" + ts
            + "\"/></effectiveTime></serviceEvent></documentationOf>"
            + "<componentOf><encompassingEncounter><effectiveTime><low value=\"" + ts + "\"/></effectiveTime><location>"
            + "<healthCareFacility><code code=\"" + kind.facility + "\" displayName=\"" + xml(kind.facilityName)
            + "\" codeSystem=\"1.2.250.1.71.4.2.4\"/></healthCareFacility></location></encompassingEncounter></componentOf>"
            + "<component><structuredBody><component><section><code code=\"" + kind.eventCode
            + "\" codeSystem=\"2.16.840.1.113883.6.1\"/><title>" + xml(kind.eventName) + "</title><text>" + body
            + "</text></section></component></structuredBody></component></ClinicalDocument>\n";
        return x.getBytes(StandardCharsets.UTF_8);
    }

    // IHE ITI TF-3 §4.2.5 (Table 4.2.5-1): the classification and identification scheme UUIDs of XDS metadata.
    private static final String SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d";
    private static final String SS_UNIQUE = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8";
    private static final String SS_SOURCE = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832";
    private static final String SS_PATIENT = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446";
    private static final String SS_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd";
    private static final String DE_TYPE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1";
    private static final String DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d";
    private static final String DE_CLASS = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a";
    private static final String DE_CONF = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f";
    private static final String DE_EVENT = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4";
    private static final String DE_FORMAT = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d";
    private static final String DE_FACILITY = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1";
    private static final String DE_PRACTICE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead";
    private static final String DE_TYPECODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983";
    private static final String DE_PATIENT = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427";
    private static final String DE_UNIQUE = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab";
    private static final String CLASSIFICATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification";
    private static final String EXTERNAL_ID = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier";

    private static String slot(String name, String... values) {
        StringBuilder sb = new StringBuilder("<rim:Slot name=\"" + name + "\"><rim:ValueList>");
        for (String v : values) {
            sb.append("<rim:Value>").append(xml(v)).append("</rim:Value>");
        }
        return sb.append("</rim:ValueList></rim:Slot>").toString();
    }

    private static String urn() {
        return "urn:uuid:" + UUID.randomUUID();
    }

    private static String coded(String scheme, String object, String code, String codingScheme, String name) {
        return "<rim:Classification id=\"" + urn() + "\" objectType=\"" + CLASSIFICATION + "\" classificationScheme=\""
            + scheme + "\" classifiedObject=\"" + object + "\" nodeRepresentation=\"" + xml(code) + "\">"
            + slot("codingScheme", codingScheme) + "<rim:Name><rim:LocalizedString value=\"" + xml(name)
            + "\"/></rim:Name></rim:Classification>";
    }

    private static String external(String scheme, String object, String value, String name) {
        return "<rim:ExternalIdentifier id=\"" + urn() + "\" objectType=\"" + EXTERNAL_ID + "\" identificationScheme=\""
            + scheme + "\" registryObject=\"" + object + "\" value=\"" + xml(value) + "\"><rim:Name>"
            + "<rim:LocalizedString value=\"" + xml(name) + "\"/></rim:Name></rim:ExternalIdentifier>";
    }

    private static String author(String scheme, String object) {
        return "<rim:Classification id=\"" + urn() + "\" objectType=\"" + CLASSIFICATION + "\" classificationScheme=\""
            + scheme + "\" classifiedObject=\"" + object + "\" nodeRepresentation=\"\">"
            + slot("authorPerson", "801234567897^TESTEUR^Jeanne^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS")
            + slot("authorInstitution", "Cabinet de l'exemple Java^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1120456789")
            + "</rim:Classification>";
    }

    /** METADATA.XML (ebRIM SubmitObjectsRequest, IHE ITI TF-3 §4.2.3) for one document of the archive. */
    static String metadata(Kind kind, byte[] cda, String docId, ZonedDateTime now) {
        String dtm = now.withZoneSameInstant(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyyMMddHHmmss"));
        String patientCx = INS + "^^^&" + INS_OID + "&ISO^NH";
        String ss = urn();
        String de = urn();
        String sha1;
        try {
            sha1 = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-1").digest(cda));
        } catch (NoSuchAlgorithmException ex) {
            throw new IllegalStateException(ex);
        }
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            + "<lcm:SubmitObjectsRequest xmlns:lcm=\"urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0\" "
            + "xmlns:rim=\"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0\"><rim:RegistryObjectList>"
            + "<rim:RegistryPackage id=\"" + ss + "\">" + slot("submissionTime", dtm)
            + "<rim:Name><rim:LocalizedString value=\"" + xml(kind.title) + "\"/></rim:Name>"
            + author(SS_AUTHOR, ss)
            + external(SS_UNIQUE, ss, oid(), "XDSSubmissionSet.uniqueId")
            + external(SS_SOURCE, ss, "1.2.250.1.999.1", "XDSSubmissionSet.sourceId")
            + external(SS_PATIENT, ss, patientCx, "XDSSubmissionSet.patientId")
            + "</rim:RegistryPackage>"
            + "<rim:Classification id=\"" + urn() + "\" objectType=\"" + CLASSIFICATION + "\" classifiedObject=\"" + ss
            + "\" classificationNode=\"" + SS_NODE + "\"/>"
            + "<rim:ExtrinsicObject id=\"" + de + "\" mimeType=\"text/xml\" objectType=\"" + DE_TYPE + "\">"
            + slot("creationTime", dtm) + slot("hash", sha1) + slot("languageCode", "fr-FR")
            + slot("serviceStartTime", dtm) + slot("serviceStopTime", dtm) + slot("size", Integer.toString(cda.length))
            + slot("sourcePatientId", patientCx)
            + slot("sourcePatientInfo", "PID-3|" + patientCx, "PID-5|" + FAMILY + "^" + GIVEN + "^^^^^L",
                   "PID-7|" + BIRTH.format(DateTimeFormatter.BASIC_ISO_DATE), "PID-8|M")
            + slot("URI", "DOC0001.XML")
            + "<rim:Name><rim:LocalizedString value=\"" + xml(kind.title) + "\"/></rim:Name>"
            + author(DE_AUTHOR, de)
            + coded(DE_CLASS, de, kind == Kind.VSM ? "11" : "10", "1.2.250.1.213.1.1.4.1",
                    kind == Kind.VSM ? "Synthèse" : "Compte rendu")
            + coded(DE_CONF, de, "N", "2.16.840.1.113883.5.25", "Normal")
            + coded(DE_EVENT, de, kind.eventCode, "2.16.840.1.113883.6.1", kind.eventName)
            + coded(DE_FORMAT, de, kind.format, kind.formatScheme, kind.format)
            + coded(DE_FACILITY, de, kind.facility, "1.2.250.1.71.4.2.4", kind.facilityName)
            + coded(DE_PRACTICE, de, "AMBULATOIRE", "1.2.250.1.213.1.1.4.9", "Ambulatoire")
            + coded(DE_TYPECODE, de, kind.loinc, "2.16.840.1.113883.6.1", kind.display)
            + external(DE_PATIENT, de, patientCx, "XDSDocumentEntry.patientId")
            + external(DE_UNIQUE, de, docId, "XDSDocumentEntry.uniqueId")
            + "</rim:ExtrinsicObject>"
            + "<rim:Association id=\"" + urn() + "\" objectType=\"urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association\" "
            + "associationType=\"urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember\" sourceObject=\"" + ss
            + "\" targetObject=\"" + de + "\">" + slot("SubmissionSetStatus", "Original") + "</rim:Association>"
            + "</rim:RegistryObjectList></lcm:SubmitObjectsRequest>\n";
    }

    /**
     * A new document of {@code kind}: CDA, the IHE_XDM.ZIP around it, and its PDF/A-1 rendering.
     *
     * @throws LpsException CONFIG when the PDF font cannot be read
     */
    static Document build(Kind kind) throws LpsException {
        ZonedDateTime now = ZonedDateTime.now(ZoneOffset.UTC).withNano(0);
        String docId = oid();
        byte[] cda = cda(kind, now, docId);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (ZipOutputStream zip = new ZipOutputStream(out)) {
            put(zip, "README.TXT", ("IHE XDM (IHE ITI-32), envoyé par l'exemple Java de mssante.\r\n"
                + "Contenu : IHE_XDM/SUBSET01/DOC0001.XML (" + kind.title + ")\r\n").getBytes(StandardCharsets.UTF_8));
            put(zip, "INDEX.HTM", ("<html><head><meta charset=\"UTF-8\"><title>IHE XDM</title></head><body>"
                + "<a href=\"IHE_XDM/SUBSET01/DOC0001.XML\">" + xml(kind.title) + "</a></body></html>")
                .getBytes(StandardCharsets.UTF_8));
            put(zip, "IHE_XDM/SUBSET01/METADATA.XML", metadata(kind, cda, docId, now).getBytes(StandardCharsets.UTF_8));
            put(zip, "IHE_XDM/SUBSET01/DOC0001.XML", cda);
        } catch (IOException ex) {
            throw new IllegalStateException(ex);
        }
        return new Document(kind, out.toByteArray(), now.toLocalDate(), pdf(kind, now));
    }

    private static void put(ZipOutputStream zip, String name, byte[] data) throws IOException {
        zip.putNextEntry(new ZipEntry(name));
        zip.write(data);
        zip.closeEntry();
    }

    /**
     * The PDF/A-1 rendering of the CDA header and body (ECO.2.1.5): the title, the patient (birth name, given
     * name, date of birth, INS), the author and the content of the section, from the same values as the CDA.
     */
    static byte[] pdf(Kind kind, ZonedDateTime now) throws LpsException {
        String body = kind == Kind.CRBIO ? "Glucose : 5.1 mmol/L" : "Pas d'allergie connue ; hypertension artérielle";
        return Pdf.render(kind.title, List.of(
            "Type de document : " + kind.display + " (LOINC " + kind.loinc + ")",
            "Patient : " + FAMILY + " " + GIVEN + ", né(e) le " + BIRTH.format(DateTimeFormatter.ofPattern("dd/MM/yyyy")),
            "INS (NIR) : " + INS,
            "Auteur : Dr Jeanne TESTEUR, Cabinet de l'exemple Java",
            "Date : " + now.format(DateTimeFormatter.ofPattern("dd/MM/yyyy HH:mm")) + " UTC",
            kind.eventName + " : " + body), now);
    }

    /** The broken variant's companion ({@code --break plain-pdf}): an empty page, no XMP, no font, no text. */
    static byte[] plainPdf() {
        return ("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
            + "trailer<</Root 1 0 R>>\n%%EOF\n").getBytes(StandardCharsets.US_ASCII);
    }

    static String randomHex(int bytes) {
        byte[] b = new byte[bytes];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }
}
