//! Templates: minijinja over the files in `templates/` (compiled into the binary), with the
//! catalogue function `t`, and filters for money and dates in the reader's notation.

use minijinja::value::{Kwargs, Value, merge_maps};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};
use rust_embed::RustEmbed;

use crate::i18n::{self, Locale};
use crate::money::Money;

#[derive(RustEmbed)]
#[folder = "templates/"]
struct TemplateFiles;

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_loader(|name| {
            Ok(TemplateFiles::get(name)
                .map(|file| String::from_utf8_lossy(&file.data).into_owned()))
        });
        env.add_function("t", translate);
        env.add_filter("money", money);
        env.add_filter("money_plain", money_plain);
        env.add_filter("date", date);
        env.add_filter("datetime", datetime);
        Templates { env }
    }

    /// Renders `name` for a reader of `locale`. `ctx` wins over `defaults` (what every page
    /// has: the visitor, the navigation); `locale` is available to the template and its
    /// functions.
    pub fn render(
        &self,
        name: &str,
        locale: Locale,
        ctx: Value,
        defaults: Value,
    ) -> Result<String, Error> {
        let base = minijinja::context! {
            locale => locale.as_str(),
            other_locale => match locale { Locale::De => "en", Locale::En => "de" },
        };
        self.env
            .get_template(name)?
            .render(merge_maps([base, defaults, ctx]))
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

/// Amounts go to templates as cents, for the `money` filter.
impl From<Money> for Value {
    fn from(amount: Money) -> Value {
        Value::from(amount.cents())
    }
}

fn locale_of(state: &State) -> Locale {
    state
        .lookup("locale")
        .and_then(|v| v.as_str().and_then(Locale::from_tag))
        .unwrap_or_default()
}

/// `t("home.title", name="…")`: the catalogue text with `{name}` filled in.
fn translate(state: &State, key: &str, kwargs: Kwargs) -> Result<String, Error> {
    let locale = locale_of(state);
    let mut text = i18n::t(locale, key);
    for arg in kwargs.args() {
        let value: Value = kwargs.get(arg)?;
        text = text.replace(&format!("{{{arg}}}"), &value.to_string());
    }
    Ok(text)
}

/// `{{ cents|money }}` → `1.234,56 €` / `€1,234.56`.
fn money(state: &State, cents: Value) -> Result<String, Error> {
    let cents = i64::try_from(cents)
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "money needs whole cents"))?;
    Ok(Money::from_cents(cents).format(locale_of(state)))
}

/// `{{ cents|money_plain }}` → `1.234,56` / `1,234.56`, for form fields.
fn money_plain(state: &State, cents: Value) -> Result<String, Error> {
    let cents = i64::try_from(cents)
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "money needs whole cents"))?;
    Ok(Money::from_cents(cents).format_plain(locale_of(state)))
}

fn date(state: &State, ms: i64) -> String {
    i18n::format_date(ms, locale_of(state))
}

fn datetime(state: &State, ms: i64) -> String {
    i18n::format_datetime(ms, locale_of(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_values_win_over_defaults() {
        let mut env = Environment::new();
        env.add_template("x.html", "{{ a }} {{ b }} {{ locale }}")
            .unwrap_or_default();
        // Later maps win, as `Templates::render` relies on.
        let merged = merge_maps([
            minijinja::context! { locale => "de" },
            minijinja::context! { a => "default", b => "default" },
            minijinja::context! { a => "page" },
        ]);
        let out = env
            .get_template("x.html")
            .and_then(|t| t.render(merged))
            .unwrap_or_default();
        assert_eq!(out, "page default de");
    }
}
