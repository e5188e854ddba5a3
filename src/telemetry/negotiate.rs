//! Content negotiation for `/metrics`: OpenMetrics when the `Accept` header names it at least as
//! strongly as the text format, else Prometheus text 0.0.4 (also for `*/*` and no header).

use super::registry::Format;

/// The format to serve for an `Accept` header value.
pub fn format_for(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let (mut om, mut text) = (0.0f64, 0.0f64);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match media.as_str() {
            "application/openmetrics-text" => om = om.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if om > 0.0 && om >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_scrapers_get_openmetrics_and_curl_gets_text() {
        let prom = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(format_for(Some(prom)), Format::OpenMetrics);
        assert_eq!(format_for(Some("*/*")), Format::Text);
        assert_eq!(format_for(None), Format::Text);
        assert_eq!(format_for(Some("text/plain;version=0.0.4")), Format::Text);
        assert_eq!(
            format_for(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert_eq!(
            format_for(Some("application/openmetrics-text;q=0.1, text/plain")),
            Format::Text
        );
        assert_eq!(
            format_for(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
        assert_eq!(format_for(Some(";;,,q=x")), Format::Text);
    }
}
