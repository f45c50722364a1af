//! `allmende demo`: a small, believable cooperative for trying the platform out: member
//! organisations with shares, dues and wallets, projects, proposals at every stage, and the
//! ledger activity that goes with them. Everything is fictional.
//!
//! All of it is written in one database transaction, with the same ledger calls the platform
//! uses, so the demo passes `allmende verify` like any real instance.

use sqlx::AnyConnection;

use crate::db::{Db, new_id, now_ms};
use crate::ledger::{self, AccountId, AccountKind, Actor, LedgerError, NewTransaction, TxKind};
use crate::money::{Money, MoneyError};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the database already holds data; the demo only fills an empty one")]
    NotEmpty,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("hashing the demo password: {0}")]
    Password(String),
    #[error("demo pledge: {0}")]
    Pledge(#[from] crate::pledges::PledgeError),
    #[error("demo review: {0}")]
    Review(#[from] crate::reviews::ReviewError),
    #[error("demo payout: {0}")]
    Payout(#[from] crate::payouts::PayoutError),
    #[error("demo vote: {0}")]
    Round(#[from] crate::rounds::RoundError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What the demo created, for the command's output.
#[derive(Debug, Default)]
pub struct DemoSummary {
    pub people: usize,
    pub organisations: usize,
    pub projects: usize,
    pub proposals: usize,
    pub transactions: usize,
}

const DAY_MS: i64 = 86_400_000;
/// One cooperative share: 100 EUR.
const SHARE: Money = Money::from_cents(10_000);
const FEE_BASIS_POINTS: i64 = 500;
/// Every demo account's password (README: "Demo accounts").
pub const DEMO_PASSWORD: &str = "allmende-demo-2026";
/// The cooperative's staff in the demo: name, address, platform role.
const STAFF: &[(&str, &str, &str)] = &[
    ("Anna Adler", "admin@allmende.example", "admin"),
    ("Vera Vogt", "vorstand@allmende.example", "board"),
    ("Karl Kaiser", "kasse@allmende.example", "treasurer"),
];

struct Org {
    slug: &'static str,
    /// The person who acts for it as org admin.
    admin: (&'static str, &'static str),
    legal_name: &'static str,
    kind: &'static str,
    city: &'static str,
    postcode: &'static str,
    leitweg_id: Option<&'static str>,
    shares: i64,
    dues: i64,
    top_up: i64,
}

const ORGS: &[Org] = &[
    Org {
        slug: "stadt-musterhausen",
        admin: ("Jonas Becker", "it@musterhausen.example"),
        legal_name: "Stadt Musterhausen",
        kind: "municipality",
        city: "Musterhausen",
        postcode: "34567",
        leitweg_id: Some("06634012-MUSTERHSN-75"),
        shares: 5,
        dues: 60_000,
        top_up: 2_500_000,
    },
    Org {
        slug: "offene-daten-leipzig",
        admin: ("Mira Schulz", "vorstand@offene-daten-leipzig.example"),
        legal_name: "Offene Daten Leipzig e. V.",
        kind: "association",
        city: "Leipzig",
        postcode: "04109",
        leitweg_id: None,
        shares: 1,
        dues: 12_000,
        top_up: 300_000,
    },
    Org {
        slug: "stiftung-digitale-teilhabe",
        admin: ("Dr. Lena Hoffmann", "foerderung@digitale-teilhabe.example"),
        legal_name: "Stiftung Digitale Teilhabe",
        kind: "foundation",
        city: "Berlin",
        postcode: "10117",
        leitweg_id: None,
        shares: 3,
        dues: 36_000,
        top_up: 1_800_000,
    },
    Org {
        slug: "tafel-rhein-main",
        admin: ("Ali Yilmaz", "it@tafel-rhein-main.example"),
        legal_name: "Tafel Rhein-Main e. V.",
        kind: "association",
        city: "Frankfurt am Main",
        postcode: "60311",
        leitweg_id: None,
        shares: 1,
        dues: 12_000,
        top_up: 150_000,
    },
    Org {
        slug: "kommunale-it-sued",
        admin: ("Petra Wagner", "beschaffung@kit-sued.example"),
        legal_name: "Zweckverband Kommunale IT Süd",
        kind: "public_body",
        city: "Augsburg",
        postcode: "86150",
        leitweg_id: Some("09761000-KITSUED-03"),
        shares: 4,
        dues: 48_000,
        top_up: 2_000_000,
    },
];

struct Project {
    slug: &'static str,
    name: &'static str,
    summary: &'static str,
    repository_url: &'static str,
    licence: &'static str,
    /// The maintainer: name and address (a demo account).
    maintainer: (&'static str, &'static str),
    categories: &'static [&'static str],
    languages: &'static [&'static str],
}

const PROJECTS: &[Project] = &[
    Project {
        slug: "formularwerk",
        name: "Formularwerk",
        summary: "Barrierefreie Online-Formulare für Verwaltungen, mit Schnittstellen zu Fachverfahren.",
        repository_url: "https://gitlab.opencode.de/formularwerk/formularwerk",
        licence: "EUPL-1.2",
        maintainer: ("Lea Lange", "lea@formularwerk.example"),
        categories: &["Barrierefreiheit", "Verwaltung"],
        languages: &["TypeScript", "Java"],
    },
    Project {
        slug: "vereinskasse",
        name: "Vereinskasse",
        summary: "Buchhaltung für gemeinnützige Vereine: Mitgliedsbeiträge, Spenden, Zuwendungsbestätigungen.",
        repository_url: "https://codeberg.org/vereinskasse/vereinskasse",
        licence: "AGPL-3.0-or-later",
        maintainer: ("Tom Berg", "tom@vereinskasse.example"),
        categories: &["Buchhaltung", "Ehrenamt"],
        languages: &["Python"],
    },
    Project {
        slug: "ratsinfo-offen",
        name: "Ratsinfo offen",
        summary: "Ratsinformationssystem für Kommunen: Sitzungen, Vorlagen, Beschlüsse, offene Daten (OParl).",
        repository_url: "https://github.com/ratsinfo-offen/ratsinfo",
        licence: "EUPL-1.2",
        maintainer: ("Nina Roth", "nina@ratsinfo-offen.example"),
        categories: &["Transparenz", "Verwaltung"],
        languages: &["PHP"],
    },
    Project {
        slug: "kartenwerk",
        name: "Kartenwerk",
        summary: "Kartendienste aus offenen Geodaten: Vektorkacheln, Geocoding, Routing.",
        repository_url: "https://codeberg.org/kartenwerk/kartenwerk",
        licence: "MIT",
        maintainer: ("Lea Lange", "lea@formularwerk.example"),
        categories: &["Geodaten"],
        languages: &["Rust", "JavaScript"],
    },
];

/// Fills an empty database with the demo cooperative.
pub async fn load(db: &Db) -> Result<DemoSummary, DemoError> {
    let mut tx = db.begin().await?;
    let existing: i64 = sqlx::query_scalar(
        "SELECT CAST((SELECT COUNT(*) FROM organisations) + (SELECT COUNT(*) FROM ledger_transactions) AS BIGINT)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if existing > 0 {
        return Err(DemoError::NotEmpty);
    }
    // One hash for all demo accounts: they share the published demo password anyway.
    let password_hash = crate::people::password::hash(DEMO_PASSWORD)
        .await
        .map_err(|e| DemoError::Password(e.to_string()))?;
    let mut demo = Demo {
        conn: &mut tx,
        now: now_ms(),
        summary: DemoSummary::default(),
        password_hash,
        people: std::collections::BTreeMap::new(),
    };
    demo.fill().await?;
    let summary = demo.summary;
    tx.commit().await?;
    Ok(summary)
}

struct Demo<'c> {
    conn: &'c mut AnyConnection,
    now: i64,
    summary: DemoSummary,
    password_hash: String,
    /// Demo accounts by address, so a person who maintains two projects is one account.
    people: std::collections::BTreeMap<&'static str, String>,
}

/// A pledge made in the demo: who, how much, and what has become of it.
struct DemoPledge {
    id: String,
    organisation_id: String,
    committed: i64,
    released: i64,
}

impl Demo<'_> {
    async fn fill(&mut self) -> Result<(), DemoError> {
        for (name, email, role) in STAFF {
            let id = self.person(name, email).await?;
            sqlx::query(
                "INSERT INTO platform_roles (person_id, role, granted_by, granted_at)
                 VALUES ($1, $2, 'cli', $3)",
            )
            .bind(&id)
            .bind(*role)
            .bind(self.now)
            .execute(&mut *self.conn)
            .await?;
        }
        self.applicant().await?;
        let mut orgs = Vec::new();
        for (number, org) in ORGS.iter().enumerate() {
            orgs.push(
                self.member(org, i64::try_from(number).unwrap_or(0) + 1)
                    .await?,
            );
        }
        let mut projects = Vec::new();
        for project in PROJECTS {
            projects.push(self.project(project).await?);
        }
        let [musterhausen, leipzig, stiftung, tafel, kit_sued] = orgs.as_slice() else {
            return Ok(());
        };
        let [formularwerk, vereinskasse, ratsinfo, kartenwerk] = projects.as_slice() else {
            return Ok(());
        };

        // Completed: accessible forms, both milestones accepted, released and paid out.
        let bitv = self
            .proposal(
                formularwerk,
                "feature",
                "Barrierefreiheit nach BITV 2.0 für alle Formularbausteine",
                "Alle Bausteine erfüllen WCAG 2.1 AA, geprüft mit Screenreadern; Prüfbericht liegt bei.",
                "funded",
                &[
                    ("Tastaturbedienung und Fokusführung", 900_000),
                    ("Screenreader-Tests und Prüfbericht", 600_000),
                ],
                -120,
            )
            .await?;
        self.describe(
            &bitv,
            "Viele Formularbausteine sind mit Tastatur und Screenreader kaum bedienbar; Kommunen müssen nach BITV 2.0 barrierefrei sein.",
            "Alle Bausteine erfüllen WCAG 2.1 AA; ein unabhängiger Prüfbericht belegt es.",
            "it@musterhausen.example",
            Some(musterhausen),
            Some("lea@formularwerk.example"),
        )
        .await?;
        self.pledge(&bitv, musterhausen, 800_000, true).await?;
        self.pledge(&bitv, kit_sued, 500_000, true).await?;
        self.pledge(&bitv, stiftung, 200_000, false).await?;
        // Both milestones delivered, accepted by the backers, released; the proposal completed.
        let accepting = [
            ("it@musterhausen.example", musterhausen.as_str()),
            ("beschaffung@kit-sued.example", kit_sued.as_str()),
        ];
        self.deliver(&bitv, "lea@formularwerk.example", 1, 70, &accepting, &[])
            .await?;
        self.deliver(&bitv, "lea@formularwerk.example", 2, 40, &accepting, &[])
            .await?;

        // Funded: XRechnung export, work under way.
        let xrechnung = self
            .proposal(
                vereinskasse,
                "feature",
                "XRechnung-Export für Rechnungen an öffentliche Auftraggeber",
                "Rechnungen als XRechnung 3.0 (UBL und CII) ausgeben, validiert mit dem KoSIT-Validator.",
                "funded",
                &[
                    ("UBL-Ausgabe mit Validierung", 450_000),
                    ("CII-Ausgabe und Dokumentation", 350_000),
                ],
                -10,
            )
            .await?;
        self.describe(
            &xrechnung,
            "Öffentliche Auftraggeber nehmen nur noch E-Rechnungen an; Vereine schreiben ihre Rechnungen bisher als PDF.",
            "Vereinskasse erzeugt XRechnung in beiden Syntaxen, geprüft mit dem offiziellen Validator.",
            "foerderung@digitale-teilhabe.example",
            Some(stiftung),
            Some("tom@vereinskasse.example"),
        )
        .await?;
        self.pledge(&xrechnung, stiftung, 500_000, true).await?;
        self.pledge(&xrechnung, leipzig, 150_000, true).await?;
        self.pledge(&xrechnung, tafel, 100_000, false).await?;
        self.pledge(&xrechnung, musterhausen, 50_000, true).await?;

        // Open for funding: maintenance contract, part pledged.
        let wartung = self
            .proposal(
                ratsinfo,
                "maintenance",
                "Wartungsvertrag 2027: Sicherheitsupdates und Releases",
                "Sicherheitslücken innerhalb von 72 Stunden behoben, ein Release pro Quartal, Support per Ticket.",
                "open",
                &[
                    ("Wartung 1. Quartal 2027", 240_000),
                    ("Wartung 2. Quartal 2027", 240_000),
                    ("Wartung 3. Quartal 2027", 240_000),
                    ("Wartung 4. Quartal 2027", 240_000),
                ],
                30,
            )
            .await?;
        self.describe(
            &wartung,
            "",
            "",
            "nina@ratsinfo-offen.example",
            None,
            Some("nina@ratsinfo-offen.example"),
        )
        .await?;
        sqlx::query(
            "UPDATE proposals SET security_response_hours = 72, releases = $1, support = $2,
                 period_amount = 240000, period = 'quarter', term_periods = 4, starts_at = $3
             WHERE id = $4",
        )
        .bind("Ein Release pro Quartal, Sicherheitsupdates sofort.")
        .bind("Ticketsystem, Antwort binnen zwei Werktagen.")
        .bind(self.now + 35 * DAY_MS)
        .bind(&wartung)
        .execute(&mut *self.conn)
        .await?;
        self.comment(
            &wartung,
            "vorstand@offene-daten-leipzig.example",
            "Gilt die Reaktionszeit von 72 Stunden auch am Wochenende?",
        )
        .await?;
        self.comment(
            &wartung,
            "nina@ratsinfo-offen.example",
            "Ja, für kritische Lücken (CVSS ab 7) auch am Wochenende. Das steht im **Wartungsbericht** jedes Quartals.",
        )
        .await?;
        self.pledge(&wartung, musterhausen, 300_000, true).await?;
        self.pledge(&wartung, kit_sued, 250_000, true).await?;

        // Open for funding: offline tiles, just started.
        let offline = self
            .proposal(
                kartenwerk,
                "feature",
                "Offline-Kartenpakete für Einsatzkräfte",
                "Kartenausschnitte als Paket herunterladen und ohne Netz nutzen, mit Aktualisierung per Differenz.",
                "open",
                &[
                    ("Paketformat und Export", 500_000),
                    ("Offline-Anzeige und Aktualisierung", 700_000),
                ],
                45,
            )
            .await?;
        self.describe(
            &offline,
            "Bei Einsätzen ohne Mobilfunk fehlen Einsatzkräften die Karten.",
            "Kartenpakete lassen sich vorab laden und offline aktualisieren.",
            "beschaffung@kit-sued.example",
            Some(kit_sued),
            Some("lea@formularwerk.example"),
        )
        .await?;
        self.pledge(&offline, kit_sued, 200_000, false).await?;

        // Draft: a maintainer's offer not yet published.
        let sepa = self
            .proposal(
                vereinskasse,
                "feature",
                "SEPA-Lastschriften für Mitgliedsbeiträge",
                "Mandate verwalten und Beitragseinzüge als pain.008 erzeugen.",
                "draft",
                &[("Mandatsverwaltung und pain.008-Export", 400_000)],
                0,
            )
            .await?;
        self.describe(
            &sepa,
            "Vereine ziehen Beiträge per Lastschrift ein und pflegen Mandate in Tabellen.",
            "Mandate in Vereinskasse, Einzug als pain.008-Datei für die Bank.",
            "tom@vereinskasse.example",
            None,
            None,
        )
        .await?;

        // Awaiting the maintainer: a request without a quote yet.
        let receipts = self
            .proposal(
                vereinskasse,
                "feature",
                "Zuwendungsbestätigungen als signiertes PDF",
                "Zuwendungsbestätigungen nach amtlichem Muster, elektronisch signiert, per E-Mail an Spender.",
                "awaiting_maintainer",
                &[],
                0,
            )
            .await?;
        self.describe(
            &receipts,
            "Wir stellen jährlich über 2.000 Zuwendungsbestätigungen von Hand aus.",
            "Vereinskasse erzeugt die Bestätigungen nach amtlichem Muster und verschickt sie.",
            "it@tafel-rhein-main.example",
            Some(tafel),
            None,
        )
        .await?;

        // In progress: funded, and the maintainer has started.
        let oparl = self
            .proposal(
                ratsinfo,
                "feature",
                "OParl-1.1-Schnittstelle",
                "Sitzungen, Vorlagen und Beschlüsse maschinenlesbar nach OParl 1.1 veröffentlichen.",
                "in_progress",
                &[
                    ("Lesende OParl-Endpunkte", 350_000),
                    ("Konformitätstests und Dokumentation", 250_000),
                ],
                -20,
            )
            .await?;
        self.describe(
            &oparl,
            "Ratsdaten liegen nur als HTML vor und lassen sich nicht weiterverwenden.",
            "Eine OParl-1.1-konforme Schnittstelle, geprüft mit dem offiziellen Validator.",
            "nina@ratsinfo-offen.example",
            None,
            Some("nina@ratsinfo-offen.example"),
        )
        .await?;
        self.pledge(&oparl, musterhausen, 400_000, true).await?;
        self.pledge(&oparl, kit_sued, 200_000, true).await?;
        // Its first milestone was rejected twice: a dispute for the board.
        let rejecting = [("it@musterhausen.example", musterhausen.as_str())];
        self.deliver(
            &oparl,
            "nina@ratsinfo-offen.example",
            1,
            30,
            &[],
            &rejecting,
        )
        .await?;
        self.deliver(
            &oparl,
            "nina@ratsinfo-offen.example",
            1,
            12,
            &[],
            &rejecting,
        )
        .await?;

        // Cancelled: the maintainer withdrew before work began; the pledge went back.
        let buildings = self
            .proposal(
                kartenwerk,
                "feature",
                "3D-Gebäudemodelle",
                "Gebäude aus amtlichen LoD2-Daten als 3D-Kacheln ausliefern.",
                "cancelled",
                &[("LoD2-Import und 3D-Kacheln", 900_000)],
                20,
            )
            .await?;
        self.describe(
            &buildings,
            "Planungsämter brauchen Gebäudemodelle im Web.",
            "3D-Kacheln aus LoD2-Daten im Standard 3D Tiles.",
            "lea@formularwerk.example",
            None,
            Some("lea@formularwerk.example"),
        )
        .await?;
        let withdrawn = self.pledge(&buildings, stiftung, 150_000, false).await?;
        self.refund(&buildings, &withdrawn).await?;

        // A top-up by bank transfer that waits for the treasurer.
        sqlx::query(
            "INSERT INTO payments (id, organisation_id, purpose, method, amount, status, reference, created_by, created_at)
             VALUES ($1, $2, 'top_up', 'bank_transfer', 50000, 'pending', 'AM-TAFE-K2RM', 'cli', $3)",
        )
        .bind(new_id())
        .bind(tafel)
        .bind(self.now - 2 * DAY_MS)
        .execute(&mut *self.conn)
        .await?;

        // Where Formularwerk's money is paid out.
        sqlx::query(
            "INSERT INTO project_payouts (project_id, method, account_holder, iban, bic, updated_by, updated_at)
             VALUES ($1, 'sepa', 'Formularwerk Entwicklergemeinschaft GbR', 'DE89370400440532013000', 'COBADEFFXXX', 'cli', $2)",
        )
        .bind(formularwerk)
        .bind(self.now)
        .execute(&mut *self.conn)
        .await?;

        // Expired: the goal was not reached by the deadline; every pledge went back.
        let expired = self
            .proposal(
                kartenwerk,
                "feature",
                "Routing für Lastenräder",
                "Routenprofil für Lastenräder mit Breiten- und Steigungsgrenzen.",
                "expired",
                &[("Routenprofil und Tests", 800_000)],
                -5,
            )
            .await?;
        self.describe(
            &expired,
            "Lastenräder werden auf ungeeignete Wege geschickt.",
            "Ein Routenprofil mit Breiten- und Steigungsgrenzen.",
            "vorstand@offene-daten-leipzig.example",
            Some(leipzig),
            Some("lea@formularwerk.example"),
        )
        .await?;
        let refund_a = self.pledge(&expired, leipzig, 60_000, true).await?;
        let refund_b = self.pledge(&expired, tafel, 20_000, false).await?;
        for pledge in [refund_a, refund_b] {
            self.refund(&expired, &pledge).await?;
        }

        self.maintenance_contract(ratsinfo, musterhausen, tafel)
            .await?;
        self.payouts(formularwerk, ratsinfo).await?;
        self.votes(&projects, &orgs, &[&wartung, &offline, &receipts])
            .await?;
        Ok(())
    }

    /// Votes through the real functions, as if time had passed: a round closed five days ago
    /// with its equal-shares result, a round open now (the Musterhausen admin has not voted
    /// yet), and a priority poll closed yesterday with its Schulze ranking.
    async fn votes(
        &mut self,
        projects: &[String],
        orgs: &[String],
        wishes: &[&String],
    ) -> Result<(), DemoError> {
        use crate::authz::{OrgRole, PlatformRole, Principal};
        use crate::rounds::{self, RoundForm, polls};
        use crate::voting::Choice;
        let [formularwerk, vereinskasse, ratsinfo, kartenwerk] = projects else {
            return Ok(());
        };
        let [musterhausen, leipzig, stiftung, tafel, kit_sued] = orgs else {
            return Ok(());
        };
        // Dues of earlier years not yet allocated: the pool the rounds vote on.
        self.post(NewTransaction::transfer(
            "demo:dues:2025",
            TxKind::Dues,
            "Beiträge 2025, noch nicht verteilt",
            Actor::cli(),
            AccountId::external_bank(),
            AccountId::pool(),
            Money::from_cents(2_000_000),
        )?)
        .await?;
        let board = Principal {
            person_id: Some(self.person_id("vorstand@allmende.example")),
            email_verified: true,
            platform_roles: [PlatformRole::Board].into_iter().collect(),
            ..Principal::default()
        };
        let admins = [
            (musterhausen, "it@musterhausen.example"),
            (leipzig, "vorstand@offene-daten-leipzig.example"),
            (stiftung, "foerderung@digitale-teilhabe.example"),
            (tafel, "it@tafel-rhein-main.example"),
            (kit_sued, "beschaffung@kit-sued.example"),
        ]
        .map(|(org, email)| {
            (
                org.clone(),
                Principal {
                    person_id: Some(self.person_id(email)),
                    email_verified: true,
                    organisations: [(org.clone(), OrgRole::Admin)].into_iter().collect(),
                    ..Principal::default()
                },
            )
        });
        let mut candidates = Vec::new();
        for (project, title, summary, cents) in [
            (
                vereinskasse,
                "Serienbriefe mit Platzhaltern",
                "Briefe an alle Mitglieder aus Vorlagen mit Platzhaltern.",
                400_000,
            ),
            (
                formularwerk,
                "Formulare in Leichter Sprache",
                "Jeder Baustein bekommt eine Fassung in Leichter Sprache.",
                500_000,
            ),
            (
                ratsinfo,
                "Tagesordnungen als PDF/A",
                "Tagesordnungen und Niederschriften archivfest als PDF/A.",
                300_000,
            ),
            (
                kartenwerk,
                "Höhenlinien-Layer",
                "Höhenlinien aus dem amtlichen Geländemodell als eigene Ebene.",
                600_000,
            ),
        ] {
            let id = self
                .proposal(
                    project,
                    "feature",
                    title,
                    summary,
                    "open",
                    &[(title, cents)],
                    60,
                )
                .await?;
            candidates.push(id);
        }
        let date = crate::proposals::date_value;
        let opened = self.now - 20 * DAY_MS;
        let form = RoundForm {
            title: "Frühjahrsrunde 2026".into(),
            description: "12.000 € aus dem Topf für vier Wünsche der Mitglieder.".into(),
            budget: "12000".into(),
            ballot_type: "approval".into(),
            rule: "equal_shares".into(),
            closes: date(self.now - 6 * DAY_MS),
            candidates: candidates.clone(),
            ..RoundForm::default()
        };
        let closed = rounds::create(self.conn, &board, &form, opened, Money::MAX).await?;
        let positions = rounds::candidates_of(self.conn, &closed).await?;
        let at = |proposal: &String| {
            positions
                .iter()
                .position(|c| c.proposal_id.as_ref() == Some(proposal))
                .unwrap_or(0)
        };
        let [serienbriefe, leichte_sprache, pdfa, hoehenlinien] = candidates.as_slice() else {
            return Ok(());
        };
        let ballots = [
            vec![at(leichte_sprache), at(pdfa)],
            vec![at(pdfa), at(hoehenlinien)],
            vec![at(serienbriefe), at(leichte_sprache)],
            vec![at(serienbriefe)],
            vec![at(hoehenlinien), at(leichte_sprache)],
        ];
        for ((org, admin), ballot) in admins.iter().zip(ballots) {
            rounds::cast(
                self.conn,
                admin,
                &closed,
                org,
                Choice::Approval(ballot),
                opened + 5 * DAY_MS,
            )
            .await?;
        }
        rounds::close(self.conn, &closed, self.now - 5 * DAY_MS).await?;

        // Open now: what is still open for funding, until ten days from now.
        let mut open_candidates: Vec<String> = wishes
            .iter()
            .map(|w| (*w).clone())
            .chain(candidates.iter().cloned())
            .collect();
        let still_open = rounds::open_proposals(self.conn, self.now).await?;
        open_candidates.retain(|c| still_open.iter().any(|p| &p.id == c));
        let form = RoundForm {
            title: "Sommerrunde 2026".into(),
            description: "Punkte verteilen: Jede Mitgliedsorganisation hat 10 Punkte.".into(),
            budget: "8000".into(),
            ballot_type: "points".into(),
            ballot_limit: "10".into(),
            rule: "equal_shares".into(),
            closes: date(self.now + 10 * DAY_MS),
            candidates: open_candidates,
            ..RoundForm::default()
        };
        let open = rounds::create(self.conn, &board, &form, self.now, Money::MAX).await?;
        let count = rounds::candidates_of(self.conn, &open).await?.len();
        for (index, (org, admin)) in admins.iter().enumerate().skip(1).take(2) {
            let points = if count > 1 {
                vec![(index % count, 6), ((index + 1) % count, 4)]
            } else {
                vec![(0, 10)]
            };
            rounds::cast(
                self.conn,
                admin,
                &open,
                org,
                Choice::Points(points),
                self.now,
            )
            .await?;
        }

        // A priority poll over the wish list, closed yesterday.
        let started = self.now - 10 * DAY_MS;
        let options: Vec<String> = polls::wish_list(self.conn)
            .await?
            .into_iter()
            .map(|w| w.id)
            .take(4)
            .collect();
        let form = polls::PollForm {
            title: "Was ist uns am wichtigsten?".into(),
            description: "Unverbindlich: Welche Wünsche sollen in die nächste Runde?".into(),
            closes: date(self.now - 2 * DAY_MS),
            options: options.clone(),
        };
        let (_, first_admin) = &admins[0];
        let poll = polls::create(self.conn, first_admin, &form, started).await?;
        let n = options.len();
        let rankings: [Vec<usize>; 5] = [
            (0..n).collect(),
            (0..n).rev().collect(),
            (0..n).map(|i| (i + 1) % n).collect(),
            (0..n).collect(),
            (0..n).map(|i| (i + 2) % n).collect(),
        ];
        for ((org, admin), ranking) in admins.iter().zip(rankings) {
            polls::cast(self.conn, admin, &poll, org, ranking, started + DAY_MS).await?;
        }
        Ok(())
    }

    /// A maintainer submits milestone `position` `days_ago` days ago; the `accepting` backers
    /// (admin address, organisation) accept it a day later, the `rejecting` ones reject it. A
    /// window that has ended meanwhile is closed (silence accepts).
    async fn deliver(
        &mut self,
        proposal_id: &str,
        maintainer: &str,
        position: i64,
        days_ago: i64,
        accepting: &[(&str, &str)],
        rejecting: &[(&str, &str)],
    ) -> Result<(), DemoError> {
        use crate::reviews::{self, Decision, ReviewSettings, SubmissionForm};
        let milestone_id: String = sqlx::query_scalar(
            "SELECT id FROM milestones WHERE proposal_id = $1 AND position = $2",
        )
        .bind(proposal_id)
        .bind(position)
        .fetch_one(&mut *self.conn)
        .await?;
        let at = self.now - days_ago * DAY_MS;
        let principal = crate::authz::principal_of(self.conn, &self.person_id(maintainer)).await?;
        let form = SubmissionForm {
            summary: "Umgesetzt wie in den Abnahmekriterien beschrieben; Tests und Dokumentation sind im Merge-Request.".into(),
            evidence: format!(
                "https://git.example/allmende-demo/merge_requests/{}\nhttps://git.example/allmende-demo/releases",
                10 + position
            ),
            notes: String::new(),
            security_fixes: "Eine mittlere Lücke (XSS im Suchfeld) behoben, Release 2.4.1.".into(),
            releases: "2.4.0, 2.4.1".into(),
            issues_handled: "23 Tickets beantwortet, 9 Fehler behoben.".into(),
            hours_spent: "31".into(),
        };
        let window_ms = 14 * DAY_MS;
        let fee = u32::try_from(FEE_BASIS_POINTS).unwrap_or(500);
        let submission = reviews::submit(
            self.conn,
            &principal,
            &milestone_id,
            &form,
            at,
            ReviewSettings {
                window_ms,
                fee_basis_points: fee,
                base_url: "http://127.0.0.1:3000",
            },
        )
        .await?;
        for (decision, backers) in [(Decision::Accept, accepting), (Decision::Reject, rejecting)] {
            for (email, organisation) in backers {
                let decided: Option<String> =
                    sqlx::query_scalar("SELECT outcome FROM milestone_submissions WHERE id = $1")
                        .bind(&submission)
                        .fetch_one(&mut *self.conn)
                        .await?;
                if decided.is_some() {
                    break;
                }
                let reviewer =
                    crate::authz::principal_of(self.conn, &self.person_id(email)).await?;
                let reason = if decision == Decision::Reject {
                    "Die Konformitätstests des Validators schlagen noch fehl; bitte nachbessern."
                } else {
                    ""
                };
                reviews::review(
                    self.conn,
                    &reviewer,
                    &submission,
                    organisation,
                    decision,
                    reason,
                    at + DAY_MS,
                    fee,
                )
                .await?;
            }
        }
        if at + window_ms < self.now {
            reviews::close_window(self.conn, &submission, at + window_ms, fee).await?;
        }
        Ok(())
    }

    /// The treasurer paid Formularwerk by a SEPA file (exported, then marked paid) and Ratsinfo
    /// offen by a Stripe Connect transfer.
    async fn payouts(&mut self, formularwerk: &str, ratsinfo: &str) -> Result<(), DemoError> {
        use crate::payouts;
        sqlx::query(
            "INSERT INTO project_payouts (project_id, method, stripe_account_id, updated_by, updated_at)
             VALUES ($1, 'stripe', 'acct_1DemoRatsinfoOffen', 'cli', $2)",
        )
        .bind(ratsinfo)
        .bind(self.now)
        .execute(&mut *self.conn)
        .await?;
        let treasurer = self.person_id("kasse@allmende.example");
        let treasurer = crate::authz::principal_of(self.conn, &treasurer).await?;
        let at = self.now - 5 * DAY_MS;
        let sepa = payouts::create(self.conn, &treasurer, formularwerk, at).await?;
        let debtor = payouts::sepa::Debtor {
            name: "Allmende eG".into(),
            iban: "DE02120300000000202051".into(),
            bic: Some("BYLADEM1001".into()),
        };
        payouts::export_sepa(
            self.conn,
            &treasurer,
            std::slice::from_ref(&sepa.id),
            &debtor,
            at,
        )
        .await?;
        payouts::mark_paid(self.conn, &treasurer, &sepa.id, at + 2 * DAY_MS).await?;
        let stripe = payouts::create(self.conn, &treasurer, ratsinfo, at).await?;
        payouts::record_transfer(
            self.conn,
            &treasurer,
            &stripe.id,
            payouts::TransferOutcome::Confirmed {
                transfer: crate::payments::stripe::Transfer {
                    id: "tr_1DemoTransferRatsinfo".into(),
                    amount: stripe.amount,
                    destination: "acct_1DemoRatsinfoOffen".into(),
                },
                idempotency_key: format!("payout:{}:0", stripe.id),
            },
            at,
        )
        .await?;
        Ok(())
    }

    /// A monthly maintenance contract in its fourth month, funded by two recurring pledges
    /// made through the real functions, as if time had passed: periods 1 and 2 collected in
    /// full, reported and released; period 3 short (the Tafel's wallet ran dry and its
    /// instalment lapsed), period 4 collected from Musterhausen only so far.
    async fn maintenance_contract(
        &mut self,
        project_id: &str,
        musterhausen: &str,
        tafel: &str,
    ) -> Result<(), DemoError> {
        use crate::pledges::recurring;
        let began = self.now - 100 * DAY_MS;
        let months: Vec<(String, i64)> = (1..=6)
            .map(|n| (format!("Wartung, Monat {n}"), 100_000))
            .collect();
        let months: Vec<(&str, i64)> = months.iter().map(|(t, c)| (t.as_str(), *c)).collect();
        let id = self
            .proposal(
                project_id,
                "maintenance",
                "Wartung Ratsinfo offen: Sicherheitsupdates und Support, sechs Monate",
                "Sicherheitslücken binnen 48 Stunden behoben, monatliche Releases, Support im Forum.",
                "open",
                &months,
                -93,
            )
            .await?;
        self.describe(
            &id,
            "",
            "",
            "nina@ratsinfo-offen.example",
            None,
            Some("nina@ratsinfo-offen.example"),
        )
        .await?;
        sqlx::query(
            "UPDATE proposals SET security_response_hours = 48, releases = $1, support = $2,
                 period_amount = 100000, period = 'month', term_periods = 6, starts_at = $3
             WHERE id = $4",
        )
        .bind("Ein Release pro Monat, Sicherheitsupdates sofort.")
        .bind("Forum, Antwort binnen zwei Werktagen.")
        .bind(began + 5 * DAY_MS)
        .bind(&id)
        .execute(&mut *self.conn)
        .await?;
        let proposal = crate::proposals::find(self.conn, &id)
            .await?
            .ok_or(crate::pledges::PledgeError::UnknownProposal)?;
        for (position, milestone) in proposal.milestones.iter().enumerate() {
            let position = i64::try_from(position).unwrap_or(0) + 1;
            let end = proposal.period_start(position + 1).unwrap_or(began) - DAY_MS;
            sqlx::query("UPDATE milestones SET due_at = $1 WHERE id = $2")
                .bind(end)
                .bind(&milestone.id)
                .execute(&mut *self.conn)
                .await?;
        }
        for (organisation, email, amount) in [
            (musterhausen, "it@musterhausen.example", "800"),
            (tafel, "it@tafel-rhein-main.example", "200"),
        ] {
            let admin = self.person_id(email);
            let principal = crate::authz::principal_of(self.conn, &admin).await?;
            recurring::pledge_recurring(
                self.conn,
                &principal,
                crate::pledges::PledgeRequest {
                    proposal_id: &id,
                    organisation_id: organisation,
                    amount,
                    show_publicly: true,
                    key: &format!("demo:recurring:{organisation}"),
                    max_amount: Money::from_cents(100_000_000),
                },
                began,
            )
            .await?;
        }
        // Lea started the work. The Tafel's wallet covers two instalments; from month 3 on its
        // collections lapse (it can pay them later, after topping up).
        sqlx::query("UPDATE proposals SET status = 'in_progress' WHERE id = $1")
            .bind(&id)
            .execute(&mut *self.conn)
            .await?;
        // Each period's report a day after it ended; nobody objected, so silence accepted the
        // first two, which are released; the third's report is under review.
        for period in 2..=4 {
            let start = proposal.period_start(period).unwrap_or(began);
            recurring::collect_period(self.conn, &id, period, start).await?;
            if period <= 3 {
                let days_ago = (self.now - start) / DAY_MS - 1;
                self.deliver(
                    &id,
                    "nina@ratsinfo-offen.example",
                    period - 1,
                    days_ago,
                    &[],
                    &[],
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn post(&mut self, new: NewTransaction) -> Result<String, DemoError> {
        let posted = ledger::post(self.conn, new).await?;
        self.summary.transactions += 1;
        Ok(posted.into_transaction().id)
    }

    /// An organisation that joined: membership, shares, dues and a wallet top-up, by transfer.
    async fn member(&mut self, org: &Org, number: i64) -> Result<String, DemoError> {
        let id = new_id();
        let joined = self.now - (400 - number * 30) * DAY_MS;
        self.organisation(&id, org, joined).await?;
        let membership_id = new_id();
        sqlx::query(
            "INSERT INTO memberships
                 (id, organisation_id, member_number, shares, joined_at, statutes_version, admitted_by)
             VALUES ($1, $2, $3, $4, $5, 'demo', 'cli')",
        )
        .bind(&membership_id)
        .bind(&id)
        .bind(number)
        .bind(org.shares)
        .bind(joined)
        .execute(&mut *self.conn)
        .await?;
        // Shares and this year's dues: owed, and paid (the transfers below).
        let year = crate::members::membership::year_of(self.now);
        for (kind, cents) in [
            ("shares", SHARE.checked_mul(org.shares)?.cents()),
            ("dues", org.dues),
        ] {
            sqlx::query(
                "INSERT INTO member_obligations (id, membership_id, kind, year, amount, paid, created_at)
                 VALUES ($1, $2, $3, $4, $5, $5, $6)",
            )
            .bind(new_id())
            .bind(&membership_id)
            .bind(kind)
            .bind(year)
            .bind(cents)
            .bind(joined)
            .execute(&mut *self.conn)
            .await?;
        }
        crate::audit::record(
            self.conn,
            &Actor::cli(),
            "membership.admitted",
            &membership_id,
            Some(&id),
            serde_json::json!({ "member_number": number, "shares": org.shares }),
        )
        .await?;
        let wallet = AccountId::wallet(&id);
        let bank = AccountId::external_bank;
        self.post(NewTransaction::transfer(
            format!("demo:shares:{}", org.slug),
            TxKind::Shares,
            format!("{} Geschäftsanteile, {}", org.shares, org.legal_name),
            Actor::cli(),
            bank(),
            AccountId::capital(),
            SHARE.checked_mul(org.shares)?,
        )?)
        .await?;
        self.post(NewTransaction::transfer(
            format!("demo:dues:{}", org.slug),
            TxKind::Dues,
            format!("Jahresbeitrag 2026, {}", org.legal_name),
            Actor::cli(),
            bank(),
            AccountId::pool(),
            Money::from_cents(org.dues),
        )?)
        .await?;
        self.post(NewTransaction::transfer(
            format!("demo:top-up:{}", org.slug),
            TxKind::TopUp,
            format!("Guthaben aufgeladen, {}", org.legal_name),
            Actor::cli(),
            bank(),
            wallet,
            Money::from_cents(org.top_up),
        )?)
        .await?;
        Ok(id)
    }

    /// A demo account, verified, with the demo password.
    async fn person(&mut self, name: &str, email: &str) -> Result<String, DemoError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO people (id, name, email, password_hash, locale, email_verified_at,
                                 password_changed_at, created_at)
             VALUES ($1, $2, $3, $4, 'de', $5, $5, $5)",
        )
        .bind(&id)
        .bind(name)
        .bind(email)
        .bind(&self.password_hash)
        .bind(self.now - 500 * DAY_MS)
        .execute(&mut *self.conn)
        .await?;
        self.summary.people += 1;
        if let Some(known) = STAFF
            .iter()
            .map(|(_, e, _)| *e)
            .chain(ORGS.iter().map(|o| o.admin.1))
            .chain(PROJECTS.iter().map(|p| p.maintainer.1))
            .find(|e| *e == email)
        {
            self.people.insert(known, id.clone());
        }
        Ok(id)
    }

    async fn comment(
        &mut self,
        proposal_id: &str,
        email: &str,
        body: &str,
    ) -> Result<(), DemoError> {
        sqlx::query(
            "INSERT INTO comments (id, proposal_id, author_id, body, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id())
        .bind(proposal_id)
        .bind(self.person_id(email))
        .bind(body)
        .bind(self.now - DAY_MS)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    fn person_id(&self, email: &str) -> String {
        self.people.get(email).cloned().unwrap_or_default()
    }

    /// Who proposed, and the texts a feature proposal has besides its summary.
    #[allow(clippy::too_many_arguments)]
    async fn describe(
        &mut self,
        proposal_id: &str,
        problem: &str,
        desired_outcome: &str,
        proposer_email: &str,
        organisation_id: Option<&str>,
        agreed_by_email: Option<&str>,
    ) -> Result<(), DemoError> {
        let origin = if organisation_id.is_some() {
            "request"
        } else {
            "offer"
        };
        sqlx::query(
            "UPDATE proposals SET problem = $1, desired_outcome = $2, origin = $3, proposed_by = $4,
                 organisation_id = $5, agreed_by = $6, agreed_at = $7, updated_at = created_at
             WHERE id = $8",
        )
        .bind(problem)
        .bind(desired_outcome)
        .bind(origin)
        .bind(self.person_id(proposer_email))
        .bind(organisation_id)
        .bind(agreed_by_email.map(|e| self.person_id(e)))
        .bind(agreed_by_email.map(|_| self.now - 40 * DAY_MS))
        .bind(proposal_id)
        .execute(&mut *self.conn)
        .await?;
        crate::audit::record(
            self.conn,
            &Actor::person(&self.person_id(proposer_email)),
            "proposal.created",
            proposal_id,
            organisation_id,
            serde_json::json!({ "origin": origin }),
        )
        .await?;
        if let Some(maintainer) = agreed_by_email {
            crate::audit::record(
                self.conn,
                &Actor::person(&self.person_id(maintainer)),
                "proposal.agree",
                proposal_id,
                organisation_id,
                serde_json::json!({ "from": "awaiting_maintainer", "to": "open" }),
            )
            .await?;
        }
        Ok(())
    }

    /// The organisation's row, its admin, its wallet.
    async fn organisation(
        &mut self,
        id: &str,
        org: &Org,
        created_at: i64,
    ) -> Result<(), DemoError> {
        let (admin_name, admin_email) = org.admin;
        sqlx::query(
            "INSERT INTO organisations
                 (id, slug, legal_name, kind, street, postcode, city, country, leitweg_id,
                  representative, contact_name, contact_email, created_at)
             VALUES ($1, $2, $3, $4, 'Marktplatz 1', $5, $6, 'DE', $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(org.slug)
        .bind(org.legal_name)
        .bind(org.kind)
        .bind(org.postcode)
        .bind(org.city)
        .bind(org.leitweg_id)
        .bind(format!("Vorstand / Leitung: {admin_name}"))
        .bind(admin_name)
        .bind(admin_email)
        .bind(created_at)
        .execute(&mut *self.conn)
        .await?;
        let admin = self.person(admin_name, admin_email).await?;
        sqlx::query(
            "INSERT INTO organisation_people (organisation_id, person_id, role, added_at)
             VALUES ($1, $2, 'admin', $3)",
        )
        .bind(id)
        .bind(&admin)
        .bind(created_at)
        .execute(&mut *self.conn)
        .await?;
        crate::audit::record(
            self.conn,
            &Actor::person(&admin),
            "organisation.created",
            id,
            Some(id),
            serde_json::json!({ "legal_name": org.legal_name, "kind": org.kind }),
        )
        .await?;
        ledger::open_account(self.conn, &AccountId::wallet(id), AccountKind::Wallet).await?;
        self.summary.organisations += 1;
        Ok(())
    }

    /// An organisation that has applied and waits for the board.
    async fn applicant(&mut self) -> Result<(), DemoError> {
        const APPLICANT: Org = Org {
            slug: "buergerstiftung-neustadt",
            admin: ("Sophie Neumann", "kontakt@buergerstiftung-neustadt.example"),
            legal_name: "Bürgerstiftung Neustadt",
            kind: "foundation",
            city: "Neustadt an der Weinstraße",
            postcode: "67433",
            leitweg_id: None,
            shares: 2,
            dues: 0,
            top_up: 0,
        };
        let id = new_id();
        self.organisation(&id, &APPLICANT, self.now - 3 * DAY_MS)
            .await?;
        let statutes =
            crate::members::statutes::load(None).map_err(|e| DemoError::Password(e.to_string()))?;
        let admin: String = sqlx::query_scalar(
            "SELECT person_id FROM organisation_people WHERE organisation_id = $1",
        )
        .bind(&id)
        .fetch_one(&mut *self.conn)
        .await?;
        sqlx::query(
            "INSERT INTO membership_applications
                 (id, organisation_id, shares, statutes_version, statutes_accepted_at, applied_by, note, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $5)",
        )
        .bind(new_id())
        .bind(&id)
        .bind(APPLICANT.shares)
        .bind(&statutes.version)
        .bind(self.now - 2 * DAY_MS)
        .bind(&admin)
        .bind("Wir möchten die Wartung von Ratsinfo offen mitfinanzieren.")
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn project(&mut self, project: &Project) -> Result<String, DemoError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO projects (id, slug, name, summary, repository_url, licence, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(project.slug)
        .bind(project.name)
        .bind(project.summary)
        .bind(project.repository_url)
        .bind(project.licence)
        .bind(self.now - 300 * DAY_MS)
        .execute(&mut *self.conn)
        .await?;
        sqlx::query("UPDATE projects SET description = $1 WHERE id = $2")
            .bind(format!(
                "{}\n\n## Mitmachen\n\n- Quellcode und Fehlermeldungen: [{}]({})\n- Lizenz: {}",
                project.summary, project.repository_url, project.repository_url, project.licence
            ))
            .bind(&id)
            .execute(&mut *self.conn)
            .await?;
        for category in project.categories {
            sqlx::query("INSERT INTO project_categories (project_id, category) VALUES ($1, $2)")
                .bind(&id)
                .bind(*category)
                .execute(&mut *self.conn)
                .await?;
        }
        for language in project.languages {
            sqlx::query("INSERT INTO project_languages (project_id, language) VALUES ($1, $2)")
                .bind(&id)
                .bind(*language)
                .execute(&mut *self.conn)
                .await?;
        }
        let (name, email) = project.maintainer;
        let maintainer = match self.people.get(email) {
            Some(existing) => existing.clone(),
            None => self.person(name, email).await?,
        };
        sqlx::query(
            "INSERT INTO project_maintainers (project_id, person_id, added_at) VALUES ($1, $2, $3)",
        )
        .bind(&id)
        .bind(&maintainer)
        .bind(self.now - 300 * DAY_MS)
        .execute(&mut *self.conn)
        .await?;
        ledger::open_account(self.conn, &AccountId::payable(&id), AccountKind::Payable).await?;
        self.summary.projects += 1;
        Ok(id)
    }

    /// A proposal with its milestones; `deadline_days` from now (negative: in the past).
    #[allow(clippy::too_many_arguments)]
    async fn proposal(
        &mut self,
        project_id: &str,
        kind: &str,
        title: &str,
        summary: &str,
        status: &str,
        milestones: &[(&str, i64)],
        deadline_days: i64,
    ) -> Result<String, DemoError> {
        let id = new_id();
        let goal = Money::checked_sum(milestones.iter().map(|(_, c)| Money::from_cents(*c)))?;
        let before_opening = matches!(status, "draft" | "awaiting_maintainer");
        let deadline = (!before_opening).then(|| self.now + deadline_days * DAY_MS);
        sqlx::query(
            "INSERT INTO proposals
                 (id, project_id, kind, title, summary, status, funding_goal, funding_deadline, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(project_id)
        .bind(kind)
        .bind(title)
        .bind(summary)
        .bind(status)
        .bind(goal.cents())
        .bind(deadline)
        .bind(self.now - (60 - deadline_days.min(0)) * DAY_MS)
        .execute(&mut *self.conn)
        .await?;
        for (position, (title, cents)) in milestones.iter().enumerate() {
            let position = i64::try_from(position).unwrap_or(0) + 1;
            let milestone_status = if status == "completed" {
                "released"
            } else {
                "planned"
            };
            sqlx::query(
                "INSERT INTO milestones
                     (id, proposal_id, position, title, acceptance_criteria, amount, due_at, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(new_id())
            .bind(&id)
            .bind(position)
            .bind(*title)
            .bind(summary)
            .bind(*cents)
            .bind(self.now + (deadline_days + 30 * position) * DAY_MS)
            .bind(milestone_status)
            .execute(&mut *self.conn)
            .await?;
        }
        if !before_opening {
            ledger::open_account(self.conn, &AccountId::escrow(&id), AccountKind::Escrow).await?;
        }
        self.summary.proposals += 1;
        Ok(id)
    }

    async fn pledge(
        &mut self,
        proposal_id: &str,
        organisation_id: &str,
        cents: i64,
        show_publicly: bool,
    ) -> Result<DemoPledge, DemoError> {
        let id = new_id();
        let wallet = AccountId::wallet(organisation_id);
        let transaction_id = self
            .post(
                NewTransaction::transfer(
                    format!("demo:pledge:{id}"),
                    TxKind::Pledge,
                    "Zusage",
                    Actor::cli(),
                    wallet.clone(),
                    AccountId::escrow(proposal_id),
                    Money::from_cents(cents),
                )?
                .for_proposal(proposal_id),
            )
            .await?;
        sqlx::query(
            "INSERT INTO pledges
                 (id, proposal_id, organisation_id, source_account, committed, show_publicly,
                  transaction_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(proposal_id)
        .bind(organisation_id)
        .bind(wallet.as_str())
        .bind(cents)
        .bind(i64::from(show_publicly))
        .bind(&transaction_id)
        .bind(self.now)
        .execute(&mut *self.conn)
        .await?;
        Ok(DemoPledge {
            id,
            organisation_id: organisation_id.to_owned(),
            committed: cents,
            released: 0,
        })
    }

    async fn refund(&mut self, proposal_id: &str, pledge: &DemoPledge) -> Result<(), DemoError> {
        let open = Money::from_cents(pledge.committed - pledge.released);
        self.post(
            NewTransaction::transfer(
                format!("demo:refund:{}", pledge.id),
                TxKind::Refund,
                "Finanzierungsziel nicht erreicht: Zusage zurück",
                Actor::system(),
                AccountId::escrow(proposal_id),
                AccountId::wallet(&pledge.organisation_id),
                open,
            )?
            .for_proposal(proposal_id),
        )
        .await?;
        sqlx::query("UPDATE pledges SET refunded = $1 WHERE id = $2")
            .bind(open.cents())
            .bind(&pledge.id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}
