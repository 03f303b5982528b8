//! The syntax of timers' 5-field cron schedules. Only the syntax is checked
//! here; the server's timer scheduler evaluates schedules with `croner`.

/// One field of a schedule: its name in messages, its range, and the names
/// that may stand for numbers.
struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const CRON_FIELDS: [CronField; 5] = [
    CronField {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    CronField {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    CronField {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    CronField {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
    },
    CronField {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: WEEKDAYS,
    },
];

/// Check a 5-field cron expression: `minute hour day-of-month month day-of-week`,
/// each a list of `*`, `N`, `N-M`, optionally with `/step`; months and weekdays
/// may also be written as three-letter names (`jan`, `mon`).
pub fn check_cron(expr: &str) -> Result<(), String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let layout = "minute hour day-of-month month day-of-week";
    if fields.len() != 5 {
        return Err(format!(
            "{expr:?} has {} field{}; a schedule has 5 ({layout}), for example \"*/5 * * * *\" (every 5 minutes) or \"0 3 * * *\" (03:00 daily)",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" }
        ));
    }
    for (text, field) in fields.iter().zip(CRON_FIELDS.iter()) {
        check_cron_field(text, field)
            .map_err(|e| format!("{expr:?}: the {} field {text:?} {e}", field.name))?;
    }
    Ok(())
}

fn check_cron_field(text: &str, f: &CronField) -> Result<(), String> {
    let range = format!("{}-{}", f.min, f.max);
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            // Months are 1-based, weekdays 0-based.
            return Ok(i as u32 + f.min);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            let names = if f.names.is_empty() {
                String::new()
            } else {
                format!(" or a name such as `{}`", f.names[0])
            };
            return Err(format!(
                "has {s:?} where a number from {range}{names} was expected"
            ));
        }
        match s.parse::<u32>() {
            Ok(v) if (f.min..=f.max).contains(&v) => Ok(v),
            _ => Err(format!("has {s}, outside {range}")),
        }
    };
    for part in text.split(',') {
        if part.is_empty() {
            return Err("has an empty item in its ',' list".to_string());
        }
        let (base, step) = match part.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (part, None),
        };
        if let Some(step) = step {
            let max_step = f.max - f.min + 1;
            match step.parse::<u32>() {
                Ok(n) if step.bytes().all(|b| b.is_ascii_digit()) && n >= 1 && n <= max_step => {}
                _ => {
                    return Err(format!(
                        "has step {step:?}; a step after '/' is a number from 1 to {max_step}"
                    ));
                }
            }
        }
        if base == "*" {
            continue;
        }
        match base.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (value(a)?, value(b)?);
                if a > b {
                    return Err(format!(
                        "has the range {base}, which runs backwards; write the smaller value first"
                    ));
                }
            }
            None => {
                value(base)?;
            }
        }
    }
    Ok(())
}
