//! Reading and writing the Pabulib `.pb` format (sections META, PROJECTS and VOTES).
//!
//! `;`-separated rows under a header row; fields with `;` or `"` are double-quoted, with `""`
//! for a quote; fields are trimmed; a BOM, CRLF line ends and blank lines are accepted; `None`
//! means a missing value. Unknown META keys and extra project and vote columns are kept, so
//! [`to_pb`] writes back what [`parse`] read. Every error names its 1-based line.

use std::collections::HashMap;

use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{One, ToPrimitive};
use serde::{Deserialize, Serialize};

use super::exact::Exact;
use super::profile::{Ballot, Choice, Profile, ProjectInput};

/// A `.pb` file that could not be read, with the 1-based line where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number (for problems found at the end: the last line).
    pub line: usize,
    /// What is wrong, in English.
    pub message: String,
}

/// The ballot format of a file (META `vote_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteType {
    /// A set of approved projects.
    Approval,
    /// Points spread over projects (`points` column), up to a total.
    Cumulative,
    /// Projects ranked, most preferred first.
    Ordinal,
    /// A score per project (`points` column).
    Scoring,
    /// A single approved project.
    Choose1,
}

impl VoteType {
    /// The META spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VoteType::Approval => "approval",
            VoteType::Cumulative => "cumulative",
            VoteType::Ordinal => "ordinal",
            VoteType::Scoring => "scoring",
            VoteType::Choose1 => "choose-1",
        }
    }

    fn parse(text: &str) -> Option<VoteType> {
        Some(match text {
            "approval" => VoteType::Approval,
            "cumulative" => VoteType::Cumulative,
            "ordinal" => VoteType::Ordinal,
            "scoring" => VoteType::Scoring,
            "choose-1" => VoteType::Choose1,
            _ => return None,
        })
    }

    /// Whether votes carry a `points` column.
    pub fn has_points(self) -> bool {
        matches!(self, VoteType::Cumulative | VoteType::Scoring)
    }
}

/// One row of PROJECTS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbProject {
    /// `project_id`.
    pub id: String,
    /// `cost`, a whole number (`4000.0` is read as 4000).
    pub cost: u64,
    /// The other columns, in the order of [`Election::project_columns`]; `None` for `None`.
    pub fields: Vec<Option<String>>,
}

/// One row of VOTES.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbVote {
    /// `voter_id`.
    pub voter_id: String,
    /// The project ids of `vote`, in file order (preference order for ordinal ballots).
    pub vote: Vec<String>,
    /// The `points` column (cumulative and scoring files), parallel to `vote`.
    pub points: Option<Vec<Exact>>,
    /// The other columns, in the order of [`Election::vote_columns`]; `None` for `None`.
    pub fields: Vec<Option<String>>,
}

/// A parsed `.pb` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Election {
    /// Every META entry in file order, values as written (including `budget`, `vote_type`,
    /// `num_projects` and `num_votes`, which [`to_pb`] rewrites from the fields below when
    /// they changed).
    pub meta: Vec<(String, String)>,
    /// The budget, exactly.
    pub budget: Exact,
    /// The ballot format.
    pub vote_type: VoteType,
    /// Names of the extra PROJECTS columns (all but `project_id` and `cost`).
    pub project_columns: Vec<String>,
    /// The projects, in file order.
    pub projects: Vec<PbProject>,
    /// Names of the extra VOTES columns (all but `voter_id`, `vote` and `points`).
    pub vote_columns: Vec<String>,
    /// The votes, in file order.
    pub votes: Vec<PbVote>,
}

impl Election {
    /// The META value for `key`, if any.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Splits one `;`-separated line into trimmed fields, honouring double quotes.
fn split_fields(text: &str, line: usize) -> Result<Vec<String>, ParseError> {
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        // Leading whitespace, then a quoted or a plain field.
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(err(line, "a quoted field is not closed")),
                }
            }
            // Only whitespace may follow the closing quote before the next separator.
            while let Some(&c) = chars.peek() {
                if c == ';' {
                    break;
                }
                if !c.is_whitespace() {
                    return Err(err(
                        line,
                        format!(
                            "unexpected {c:?} after a closing quote (write \"\" for a quote inside a quoted field)"
                        ),
                    ));
                }
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ';' {
                    break;
                }
                field.push(c);
                chars.next();
            }
            field = field.trim().to_string();
        }
        fields.push(field);
        match chars.next() {
            Some(';') => continue,
            _ => break,
        }
    }
    Ok(fields)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Section {
    None,
    Meta,
    Projects,
    Votes,
}

fn missing(value: &str) -> bool {
    value.eq_ignore_ascii_case("none")
}

/// Parses a whole `.pb` file.
pub fn parse(text: &str) -> Result<Election, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut section = Section::None;
    let mut header: Option<Vec<String>> = None;
    let mut meta: Vec<(String, String)> = Vec::new();
    let mut meta_lines: HashMap<String, usize> = HashMap::new();
    let mut seen_sections = Vec::new();

    let mut projects: Vec<PbProject> = Vec::new();
    let mut project_index: HashMap<String, usize> = HashMap::new();
    let mut project_lines: Vec<usize> = Vec::new();
    let mut project_columns: Vec<String> = Vec::new();
    let mut project_layout: (usize, usize, Vec<usize>) = (0, 0, Vec::new());

    let mut votes: Vec<PbVote> = Vec::new();
    let mut voter_lines: HashMap<String, usize> = HashMap::new();
    let mut vote_columns: Vec<String> = Vec::new();
    let mut vote_layout: (usize, usize, Option<usize>, Vec<usize>) = (0, 0, None, Vec::new());
    let mut vote_type: Option<VoteType> = None;
    let mut budget: Option<Exact> = None;
    let mut last_line = 0;

    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        last_line = line;
        let fields = split_fields(raw, line)?;
        let title = fields[0].to_ascii_lowercase();
        let next = match title.as_str() {
            "meta" => Some(Section::Meta),
            "projects" => Some(Section::Projects),
            "votes" => Some(Section::Votes),
            _ => None,
        };
        if let Some(next) = next
            && fields.iter().skip(1).all(|f| f.is_empty())
        {
            if seen_sections.contains(&next) {
                return Err(err(line, format!("section {} appears twice", fields[0])));
            }
            let expected = match section {
                Section::None => Section::Meta,
                Section::Meta => Section::Projects,
                _ => Section::Votes,
            };
            if next != expected {
                return Err(err(
                    line,
                    format!(
                        "expected section {} here, found {} (the order is META, PROJECTS, VOTES)",
                        section_name(expected),
                        fields[0]
                    ),
                ));
            }
            if next == Section::Projects {
                // META is complete: check what the rest depends on.
                vote_type = Some(check_meta(&meta, &meta_lines, line)?);
                budget = Some(parse_budget(&meta, &meta_lines, line)?);
            }
            seen_sections.push(next);
            section = next;
            header = None;
            continue;
        }
        if section == Section::None {
            return Err(err(line, "the file must start with a META section"));
        }
        let Some(columns) = &header else {
            // The first row of a section is its header.
            let names: Vec<String> = fields.clone();
            match section {
                Section::Meta => {}
                Section::Projects => {
                    project_layout = project_header(&names, line)?;
                    project_columns = project_layout.2.iter().map(|&c| names[c].clone()).collect();
                }
                Section::Votes => {
                    let vt = vote_type.unwrap_or(VoteType::Approval);
                    vote_layout = vote_header(&names, vt, line)?;
                    vote_columns = vote_layout.3.iter().map(|&c| names[c].clone()).collect();
                }
                Section::None => {}
            }
            header = Some(names);
            continue;
        };
        if fields.len() > columns.len() && section != Section::Meta {
            return Err(err(
                line,
                format!(
                    "{} fields, but the header has only {} columns (quote values that contain ';')",
                    fields.len(),
                    columns.len()
                ),
            ));
        }
        match section {
            Section::Meta => {
                if fields.len() < 2 {
                    return Err(err(line, "a META row needs a key and a value: key;value"));
                }
                let key = fields[0].clone();
                if key.is_empty() {
                    return Err(err(line, "empty META key"));
                }
                // An unquoted ';' inside a value: keep the whole value.
                let value = fields[1..].join(";");
                if let Some(first) = meta_lines.get(&key) {
                    return Err(err(
                        line,
                        format!("META key {key:?} appears twice (first on line {first})"),
                    ));
                }
                meta_lines.insert(key.clone(), line);
                meta.push((key, value));
            }
            Section::Projects => {
                let (id_col, cost_col, extra) = &project_layout;
                let get = |c: usize| fields.get(c).map(String::as_str).unwrap_or("None");
                let id = get(*id_col).to_string();
                if id.is_empty() || missing(&id) {
                    return Err(err(line, "project without a project_id"));
                }
                if let Some(&first) = project_index.get(&id) {
                    return Err(err(
                        line,
                        format!(
                            "duplicate project id {id:?} (first on line {})",
                            project_lines[first]
                        ),
                    ));
                }
                let cost = parse_cost(get(*cost_col), &id, line)?;
                let fields = extra
                    .iter()
                    .map(|&c| {
                        let v = get(c);
                        (!missing(v)).then(|| v.to_string())
                    })
                    .collect();
                project_index.insert(id.clone(), projects.len());
                project_lines.push(line);
                projects.push(PbProject { id, cost, fields });
            }
            Section::Votes => {
                let vt = vote_type.unwrap_or(VoteType::Approval);
                let (voter_col, vote_col, points_col, extra) = &vote_layout;
                let get = |c: usize| fields.get(c).map(String::as_str).unwrap_or("None");
                let voter_id = get(*voter_col).to_string();
                if voter_id.is_empty() || missing(&voter_id) {
                    return Err(err(line, "vote without a voter_id"));
                }
                if let Some(first) = voter_lines.get(&voter_id) {
                    return Err(err(
                        line,
                        format!("duplicate voter id {voter_id:?} (first on line {first})"),
                    ));
                }
                let vote_text = get(*vote_col);
                let vote: Vec<String> = if missing(vote_text) {
                    Vec::new()
                } else {
                    vote_text
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                };
                let mut listed = HashMap::new();
                for id in &vote {
                    if !project_index.contains_key(id) {
                        return Err(err(
                            line,
                            format!("voter {voter_id:?} votes for unknown project {id:?}"),
                        ));
                    }
                    if listed.insert(id.as_str(), ()).is_some() {
                        return Err(err(
                            line,
                            format!("voter {voter_id:?} lists project {id:?} twice"),
                        ));
                    }
                }
                if vt == VoteType::Choose1 && vote.len() > 1 {
                    return Err(err(
                        line,
                        format!(
                            "choose-1 vote of {voter_id:?} lists {} projects",
                            vote.len()
                        ),
                    ));
                }
                let points = match points_col {
                    Some(c) => Some(parse_points(get(*c), vote.len(), &voter_id, line)?),
                    None => None,
                };
                let fields = extra
                    .iter()
                    .map(|&c| {
                        let v = get(c);
                        (!missing(v)).then(|| v.to_string())
                    })
                    .collect();
                voter_lines.insert(voter_id.clone(), line);
                votes.push(PbVote {
                    voter_id,
                    vote,
                    points,
                    fields,
                });
            }
            Section::None => {}
        }
    }
    let end = last_line.max(1);
    for needed in [Section::Meta, Section::Projects, Section::Votes] {
        if !seen_sections.contains(&needed) {
            return Err(err(
                end,
                format!("the {} section is missing", section_name(needed)),
            ));
        }
    }
    if header.is_none() {
        return Err(err(end, "the VOTES section has no header row"));
    }
    let (Some(vote_type), Some(budget)) = (vote_type, budget) else {
        return Err(err(end, "META is incomplete"));
    };
    check_count(
        &meta,
        &meta_lines,
        "num_projects",
        projects.len(),
        "PROJECTS",
    )?;
    check_count(&meta, &meta_lines, "num_votes", votes.len(), "VOTES")?;
    Ok(Election {
        meta,
        budget,
        vote_type,
        project_columns,
        projects,
        vote_columns,
        votes,
    })
}

fn section_name(s: Section) -> &'static str {
    match s {
        Section::Meta => "META",
        Section::Projects => "PROJECTS",
        Section::Votes => "VOTES",
        Section::None => "(none)",
    }
}

fn meta_value<'a>(meta: &'a [(String, String)], key: &str) -> Option<&'a str> {
    meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn check_meta(
    meta: &[(String, String)],
    lines: &HashMap<String, usize>,
    projects_line: usize,
) -> Result<VoteType, ParseError> {
    let Some(vt) = meta_value(meta, "vote_type") else {
        return Err(err(projects_line, "META has no vote_type"));
    };
    VoteType::parse(vt.trim()).ok_or_else(|| {
        err(
            lines.get("vote_type").copied().unwrap_or(projects_line),
            format!(
                "unknown vote_type {vt:?} (expected approval, cumulative, ordinal, scoring or choose-1)"
            ),
        )
    })
}

fn parse_budget(
    meta: &[(String, String)],
    lines: &HashMap<String, usize>,
    projects_line: usize,
) -> Result<Exact, ParseError> {
    let line = lines.get("budget").copied().unwrap_or(projects_line);
    let Some(text) = meta_value(meta, "budget") else {
        return Err(err(line, "META has no budget"));
    };
    let budget = parse_number(text)
        .ok_or_else(|| err(line, format!("the budget {text:?} is not a number")))?;
    if budget.is_negative() {
        return Err(err(line, format!("the budget {text:?} is negative")));
    }
    Ok(budget)
}

/// A number as Pabulib writes it; a decimal comma is accepted like pabutools does.
fn parse_number(text: &str) -> Option<Exact> {
    text.trim().replace(',', ".").parse().ok()
}

fn parse_cost(text: &str, id: &str, line: usize) -> Result<u64, ParseError> {
    let cost = parse_number(text).ok_or_else(|| {
        err(
            line,
            format!("the cost {text:?} of project {id:?} is not a number"),
        )
    })?;
    if cost.is_negative() {
        return Err(err(
            line,
            format!("the cost {text:?} of project {id:?} is negative"),
        ));
    }
    if !cost.is_integer() {
        return Err(err(
            line,
            format!("the cost {text:?} of project {id:?} is not a whole number"),
        ));
    }
    cost.numer().to_u64().ok_or_else(|| {
        err(
            line,
            format!("the cost {text:?} of project {id:?} is too large"),
        )
    })
}

fn parse_points(
    text: &str,
    count: usize,
    voter: &str,
    line: usize,
) -> Result<Vec<Exact>, ParseError> {
    let items: Vec<&str> = if missing(text) || text.is_empty() {
        Vec::new()
    } else {
        text.split(',').map(str::trim).collect()
    };
    if items.len() != count {
        return Err(err(
            line,
            format!(
                "voter {voter:?} has {} points for {count} projects (the points column must match the vote column)",
                items.len()
            ),
        ));
    }
    items
        .into_iter()
        .map(|p| {
            p.parse::<Exact>().map_err(|_| {
                err(
                    line,
                    format!("voter {voter:?}: points {p:?} are not a number"),
                )
            })
        })
        .collect()
}

fn column(names: &[String], name: &str, section: &str, line: usize) -> Result<usize, ParseError> {
    names
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| err(line, format!("the {section} header has no {name} column")))
}

fn check_unique_columns(names: &[String], section: &str, line: usize) -> Result<(), ParseError> {
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(err(
                line,
                format!("the {section} header names column {n:?} twice"),
            ));
        }
    }
    Ok(())
}

fn project_header(names: &[String], line: usize) -> Result<(usize, usize, Vec<usize>), ParseError> {
    check_unique_columns(names, "PROJECTS", line)?;
    let id = column(names, "project_id", "PROJECTS", line)?;
    let cost = column(names, "cost", "PROJECTS", line)?;
    let extra = (0..names.len()).filter(|&c| c != id && c != cost).collect();
    Ok((id, cost, extra))
}

type VoteLayout = (usize, usize, Option<usize>, Vec<usize>);

fn vote_header(
    names: &[String],
    vote_type: VoteType,
    line: usize,
) -> Result<VoteLayout, ParseError> {
    check_unique_columns(names, "VOTES", line)?;
    let voter = column(names, "voter_id", "VOTES", line)?;
    let vote = column(names, "vote", "VOTES", line)?;
    let points = if vote_type.has_points() {
        Some(column(names, "points", "VOTES", line)?)
    } else {
        None
    };
    let extra = (0..names.len())
        .filter(|&c| c != voter && c != vote && Some(c) != points)
        .collect();
    Ok((voter, vote, points, extra))
}

fn check_count(
    meta: &[(String, String)],
    lines: &HashMap<String, usize>,
    key: &str,
    actual: usize,
    section: &str,
) -> Result<(), ParseError> {
    let Some(text) = meta_value(meta, key) else {
        return Ok(());
    };
    let line = lines.get(key).copied().unwrap_or(1);
    let stated: usize = text
        .trim()
        .parse()
        .map_err(|_| err(line, format!("{key} {text:?} is not a whole number")))?;
    if stated != actual {
        return Err(err(
            line,
            format!("{key} says {stated}, but {section} has {actual} rows"),
        ));
    }
    Ok(())
}

/// Quotes a field if it needs it.
fn field(out: &mut String, value: &str) {
    let needs = value.contains([';', '"', '\n', '\r']) || value.trim() != value;
    if needs {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn row<'a>(out: &mut String, values: impl IntoIterator<Item = &'a str>) {
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        field(out, v);
    }
    out.push('\n');
}

/// An exact number as a decimal if it has a finite one (as Pabulib writes numbers), else `a/b`.
pub fn format_number(value: &Exact) -> String {
    let mut den = value.denom().clone();
    let (mut twos, mut fives) = (0u32, 0u32);
    let two = BigInt::from(2);
    let five = BigInt::from(5);
    while den.is_even() {
        den /= &two;
        twos += 1;
    }
    while (&den % &five) == BigInt::from(0) {
        den /= &five;
        fives += 1;
    }
    if den.is_one() {
        value.to_decimal_string(twos.max(fives))
    } else {
        value.to_string()
    }
}

/// Writes an election in the `.pb` format (LF line ends, no BOM); [`parse`] reads it back equal.
pub fn to_pb(election: &Election) -> String {
    let mut out = String::new();
    let mut meta: Vec<(String, String)> = election.meta.clone();
    let set = |meta: &mut Vec<(String, String)>,
               key: &str,
               value: String,
               same: &dyn Fn(&str) -> bool| {
        match meta.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => {
                if !same(v) {
                    *v = value;
                }
            }
            None => meta.push((key.to_string(), value)),
        }
    };
    let budget = election.budget.clone();
    set(&mut meta, "budget", format_number(&budget), &|v| {
        parse_number(v).as_ref() == Some(&budget)
    });
    set(
        &mut meta,
        "vote_type",
        election.vote_type.as_str().into(),
        &|v| VoteType::parse(v.trim()) == Some(election.vote_type),
    );
    let np = election.projects.len();
    let nv = election.votes.len();
    if meta.iter().any(|(k, _)| k == "num_projects") {
        set(&mut meta, "num_projects", np.to_string(), &|v| {
            v.trim().parse() == Ok(np)
        });
    }
    if meta.iter().any(|(k, _)| k == "num_votes") {
        set(&mut meta, "num_votes", nv.to_string(), &|v| {
            v.trim().parse() == Ok(nv)
        });
    }
    out.push_str("META\n");
    row(&mut out, ["key", "value"]);
    for (k, v) in &meta {
        row(&mut out, [k.as_str(), v.as_str()]);
    }
    out.push_str("PROJECTS\n");
    let mut header = vec!["project_id", "cost"];
    header.extend(election.project_columns.iter().map(String::as_str));
    row(&mut out, header);
    for p in &election.projects {
        let cost = p.cost.to_string();
        let mut values = vec![p.id.as_str(), cost.as_str()];
        values.extend(p.fields.iter().map(|f| f.as_deref().unwrap_or("None")));
        row(&mut out, values);
    }
    out.push_str("VOTES\n");
    let points = election.vote_type.has_points();
    let mut header = vec!["voter_id", "vote"];
    if points {
        header.push("points");
    }
    header.extend(election.vote_columns.iter().map(String::as_str));
    row(&mut out, header);
    for v in &election.votes {
        let vote = v.vote.join(",");
        let pts = v
            .points
            .as_ref()
            .map(|ps| ps.iter().map(format_number).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        let mut values = vec![v.voter_id.as_str(), vote.as_str()];
        if points {
            values.push(pts.as_str());
        }
        values.extend(v.fields.iter().map(|f| f.as_deref().unwrap_or("None")));
        row(&mut out, values);
    }
    out
}

/// Why an election cannot become a [`Profile`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// A negative score (scoring files).
    #[error(
        "voter {voter:?} gives negative points {points} (only non-negative points are supported)"
    )]
    NegativePoints {
        /// The voter.
        voter: String,
        /// The points.
        points: Exact,
    },
    /// Points whose common denominator is too large to scale to whole numbers.
    #[error("the points cannot be scaled to whole numbers below 2^62")]
    PointsTooFine,
}

impl TryFrom<&Election> for Profile {
    type Error = ConversionError;

    /// One ballot per vote (the rules group identical ones). Fractional points are scaled by
    /// their common denominator, which changes no rule's outcome.
    fn try_from(election: &Election) -> Result<Profile, ConversionError> {
        let index: HashMap<&str, usize> = election
            .projects
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i))
            .collect();
        let mut scale = BigInt::one();
        for v in &election.votes {
            for p in v.points.iter().flatten() {
                if p.is_negative() {
                    return Err(ConversionError::NegativePoints {
                        voter: v.voter_id.clone(),
                        points: p.clone(),
                    });
                }
                scale = scale.lcm(p.denom());
            }
        }
        let scale = Exact::from_int(scale);
        let mut ballots = Vec::with_capacity(election.votes.len());
        for v in &election.votes {
            // Ids were checked when parsing; an unknown one here cannot come from `parse`.
            let ids: Vec<usize> = v
                .vote
                .iter()
                .filter_map(|id| index.get(id.as_str()).copied())
                .collect();
            let choice = match election.vote_type {
                VoteType::Approval | VoteType::Choose1 => Choice::Approval(ids),
                VoteType::Ordinal => Choice::Ranking(ids),
                VoteType::Cumulative | VoteType::Scoring => {
                    let mut list = Vec::with_capacity(ids.len());
                    for (p, pts) in ids.iter().zip(v.points.iter().flatten()) {
                        let whole = pts.mul(&scale);
                        let value = whole
                            .numer()
                            .to_u64()
                            .filter(|&x| x <= 1 << 62)
                            .ok_or(ConversionError::PointsTooFine)?;
                        list.push((*p, value));
                    }
                    Choice::Points(list)
                }
            };
            ballots.push(Ballot {
                choice,
                multiplicity: 1,
            });
        }
        Ok(Profile {
            budget: election.budget.clone(),
            projects: election
                .projects
                .iter()
                .map(|p| ProjectInput {
                    id: p.id.clone(),
                    cost: p.cost,
                })
                .collect(),
            ballots,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "META\nkey;value\ndescription;\"A; quoted \"\"test\"\"\"\nnum_projects;3\nnum_votes;2\nbudget;100.50\nvote_type;approval\ncustom;kept\nPROJECTS\nproject_id;cost;name;votes\n1;40;First;2\n2;60.0;\"Second; with semicolon\";None\n10;30;Third;1\nVOTES\nvoter_id;vote;age\nv1;1,2;30\nv2;10,1;None\n";

    fn parse_ok(text: &str) -> Election {
        match parse(text) {
            Ok(e) => e,
            Err(e) => panic!("should parse: {e}"),
        }
    }

    fn parse_err(text: &str) -> ParseError {
        match parse(text) {
            Ok(_) => panic!("should not parse:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_a_small_file() {
        let e = parse_ok(SMALL);
        assert_eq!(e.budget, Exact::ratio(201, 2));
        assert_eq!(e.vote_type, VoteType::Approval);
        assert_eq!(e.meta("description"), Some("A; quoted \"test\""));
        assert_eq!(e.meta("custom"), Some("kept"));
        assert_eq!(e.projects.len(), 3);
        assert_eq!(e.projects[1].cost, 60);
        assert_eq!(e.project_columns, ["name", "votes"]);
        assert_eq!(
            e.projects[1].fields,
            [Some("Second; with semicolon".into()), None]
        );
        assert_eq!(e.votes[1].vote, ["10", "1"]);
        assert_eq!(e.votes[1].fields, [None]);
        let p = Profile::try_from(&e).expect("converts");
        assert_eq!(p.ballots[1].choice, Choice::Approval(vec![2, 0]));
    }

    #[test]
    fn crlf_bom_and_blank_lines() {
        let text = format!("\u{feff}{}", SMALL.replace('\n', "\r\n\r\n"));
        assert_eq!(parse_ok(&text), parse_ok(SMALL));
    }

    #[test]
    fn writes_what_it_reads() {
        let e = parse_ok(SMALL);
        let written = to_pb(&e);
        assert_eq!(parse_ok(&written), e);
    }

    #[test]
    fn points_and_rankings() {
        let text = "META\nkey;value\nbudget;10\nvote_type;cumulative\nPROJECTS\nproject_id;cost\na;5\nb;5\nVOTES\nvoter_id;vote;points\n1;a,b;2.5,1\n2;b;3\n";
        let e = parse_ok(text);
        assert_eq!(
            e.votes[0].points,
            Some(vec![Exact::ratio(5, 2), Exact::from(1u64)])
        );
        let p = Profile::try_from(&e).expect("converts");
        // Scaled by 2 to whole numbers.
        assert_eq!(p.ballots[0].choice, Choice::Points(vec![(0, 5), (1, 2)]));
        assert_eq!(p.ballots[1].choice, Choice::Points(vec![(1, 6)]));
        assert_eq!(parse_ok(&to_pb(&e)), e);
        let ordinal = text
            .replace("cumulative", "ordinal")
            .replace(";points", "")
            .replace(";2.5,1", "")
            .replace(";3\n", "\n");
        let e = parse_ok(&ordinal);
        let p = Profile::try_from(&e).expect("converts");
        assert_eq!(p.ballots[0].choice, Choice::Ranking(vec![0, 1]));
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("10,1;None", 17, "v2;10,99;None"),
            ("10;30;Third;1", 13, "1;30;Third;1"),
            ("v2;10,1;None", 17, "v1;10;None"),
            ("2;60.0;", 12, "2;sixty;"),
            ("2;60.0;", 12, "2;60.5;"),
            ("num_projects;3", 4, "num_projects;4"),
            ("num_votes;2", 5, "num_votes;3"),
            ("budget;100.50", 6, "budget;lots"),
            ("vote_type;approval", 7, "vote_type;quadratic"),
            ("v1;1,2;30", 16, "v1;1,2;30;extra"),
            ("v1;1,2;30", 16, "v1;1,1;30"),
            ("v1;1,2;30", 16, "v1;\"1,2;30"),
        ];
        for &(from, line, to) in cases {
            let text = SMALL.replacen(from, to, 1);
            let e = parse_err(&text);
            assert_eq!(e.line, line, "{to:?}: {e}");
        }
        let e = parse_err(
            &SMALL
                .replace("v1;1,2;30\nv2;10,1;None\n", "")
                .replace("VOTES\nvoter_id;vote;age\n", ""),
        );
        assert!(e.message.contains("VOTES section is missing"), "{e}");
        let e = parse_err("PROJECTS\nproject_id;cost\n");
        assert_eq!(e.line, 1);
        let e =
            parse_err(&SMALL.replace("project_id;cost;name;votes", "project_id;price;name;votes"));
        assert_eq!(e.line, 10);
        assert!(e.message.contains("cost"), "{e}");
        let points = "META\nkey;value\nbudget;10\nvote_type;cumulative\nPROJECTS\nproject_id;cost\na;5\nb;5\nVOTES\nvoter_id;vote;points\n1;a,b;2\n";
        let e = parse_err(points);
        assert_eq!(e.line, 11);
        assert!(e.message.contains("points"), "{e}");
    }

    mod round_trip {
        use super::super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = Option<String>> {
            proptest::option::of("[ a-zA-Z0-9;\"é,.:#-]{0,10}")
                .prop_map(|v| v.filter(|s| !s.trim().eq_ignore_ascii_case("none")))
        }

        fn election() -> impl Strategy<Value = Election> {
            let meta = vec(("x_[a-z]{1,5}", "[ a-zA-Z0-9;\",.#-]{0,12}"), 0..4);
            let vote_type = prop_oneof![
                Just(VoteType::Approval),
                Just(VoteType::Cumulative),
                Just(VoteType::Ordinal),
            ];
            let project = (
                "[0-9][A-Za-z0-9_./-]{0,5}",
                0u64..1_000_000,
                vec(value(), 2),
            );
            let vote = (
                "v[0-9]{1,5}",
                vec((0usize..6, 0u64..1000, 0u32..3), 0..5),
                vec(value(), 1),
            );
            (
                meta,
                vote_type,
                vec(project, 1..6),
                vec(vote, 0..6),
                0u64..10_000_000,
                0u32..3,
            )
                .prop_map(
                    |(mut meta, vote_type, mut projects, mut votes, budget, places)| {
                        meta.sort();
                        meta.dedup_by(|a, b| a.0 == b.0);
                        projects.sort_by(|a, b| a.0.cmp(&b.0));
                        projects.dedup_by(|a, b| a.0 == b.0);
                        votes.sort_by(|a, b| a.0.cmp(&b.0));
                        votes.dedup_by(|a, b| a.0 == b.0);
                        let budget = Exact::ratio(budget, 10u64.pow(places));
                        meta.insert(0, ("budget".into(), format_number(&budget)));
                        meta.push(("vote_type".into(), vote_type.as_str().into()));
                        let ids: Vec<String> = projects.iter().map(|p| p.0.clone()).collect();
                        Election {
                            meta,
                            budget,
                            vote_type,
                            project_columns: vec!["name".into(), "category".into()],
                            projects: projects
                                .into_iter()
                                .map(|(id, cost, fields)| PbProject { id, cost, fields })
                                .collect(),
                            vote_columns: vec!["age".into()],
                            votes: votes
                                .into_iter()
                                .map(|(voter_id, picks, fields)| {
                                    let mut vote: Vec<String> = Vec::new();
                                    let mut points = Vec::new();
                                    for (i, pts, places) in picks {
                                        let id = &ids[i % ids.len()];
                                        if !vote.contains(id) {
                                            vote.push(id.clone());
                                            points.push(Exact::ratio(pts, 10u64.pow(places)));
                                        }
                                    }
                                    PbVote {
                                        voter_id,
                                        vote,
                                        points: vote_type.has_points().then_some(points),
                                        fields,
                                    }
                                })
                                .collect(),
                        }
                    },
                )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn parse_reads_what_to_pb_writes(e in election()) {
                let text = to_pb(&e);
                let back = parse(&text);
                prop_assert_eq!(back.as_ref(), Ok(&e), "{}", text);
                // Windows line ends and a BOM change nothing.
                let crlf = format!("\u{feff}{}", text.replace('\n', "\r\n"));
                prop_assert_eq!(parse(&crlf), Ok(e));
            }
        }
    }
}
