//! The API's own accept → assignment histogram, scraped from its `/metrics`.

use std::net::SocketAddr;

const NAME: &str = "workflowexecution_api_dispatch_latency_seconds";

/// Cumulative bucket counts by upper bound, plus sum and count.
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    /// `(le, cumulative count)`, ascending `le`.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of observations, seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

impl Histogram {
    /// `self - earlier`: the observations made in between.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|&(le, c)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|b| b.0 == le)
                    .map_or(0.0, |b| b.1);
                (le, c - before)
            })
            .collect();
        Histogram {
            buckets,
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// The upper bound of the bucket holding the `q`-quantile.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let want = q * self.count;
        self.buckets
            .iter()
            .find(|(_, c)| *c >= want && *c > 0.0)
            .map(|(le, _)| *le)
    }
}

/// Scrapes the dispatch latency histogram of the API at `admin`.
pub async fn dispatch_latency(admin: SocketAddr) -> anyhow::Result<Histogram> {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await?
        .text()
        .await?;
    Ok(parse(&text))
}

fn parse(text: &str) -> Histogram {
    let mut h = Histogram::default();
    for line in text.lines().filter(|l| l.starts_with(NAME)) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if key == format!("{NAME}_sum") {
            h.sum = value;
        } else if key == format!("{NAME}_count") {
            h.count = value;
        } else if let Some(le) = key.split("le=\"").nth(1).and_then(|s| s.split('"').next()) {
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            h.buckets.push((le, value));
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_subtracts() {
        let text = "# HELP x\nworkflowexecution_api_dispatch_latency_seconds_sum 1.5\n\
            workflowexecution_api_dispatch_latency_seconds_count 4\n\
            workflowexecution_api_dispatch_latency_seconds_bucket{le=\"0.5\"} 1\n\
            workflowexecution_api_dispatch_latency_seconds_bucket{le=\"1.0\"} 3\n\
            workflowexecution_api_dispatch_latency_seconds_bucket{le=\"+Inf\"} 4\n";
        let h = parse(text);
        assert_eq!(h.count, 4.0);
        assert_eq!(h.quantile_bound(0.5), Some(1.0));
        assert_eq!(h.quantile_bound(0.99), Some(f64::INFINITY));
        let d = h.since(&parse(&text.replace("} 1\n", "} 0\n")));
        assert_eq!(d.buckets[0].1, 1.0);
    }
}
