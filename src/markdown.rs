//! Markdown to HTML for text that people write (statutes, descriptions): raw HTML in the
//! source is shown as text, never passed through, and links can only be http(s) or relative.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

pub fn to_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        // Raw HTML becomes visible text, escaped by the renderer.
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme_free = !lower.contains(':') || lower.starts_with('/') || lower.starts_with('#');
    if scheme_free
        || lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("mailto:")
    {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn raw_html_and_script_links_do_not_pass() {
        let html = to_html(
            "# Satzung\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <b>fett</b>",
        );
        assert!(html.contains("<h1>Satzung</h1>"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
    }

    #[test]
    fn ordinary_markdown_renders() {
        let html = to_html(
            "§ 1 **Name**\n\n- eins\n- zwei\n\n[Gesetz](https://www.gesetze-im-internet.de/geng/)",
        );
        assert!(html.contains("<strong>Name</strong>"));
        assert!(html.contains("<li>eins</li>"));
        assert!(html.contains("href=\"https://www.gesetze-im-internet.de/geng/\""));
    }
}
