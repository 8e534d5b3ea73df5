//! How wide each column of the fleet table is: names get the room they need, up to a cap;
//! the bars take what is left and shrink first, down to nothing on a narrow screen.

/// Widest a name column gets; longer names are cut in the middle.
pub const NAME_CAP: u16 = 40;
/// Widest a bar gets.
const BAR_MAX: u16 = 20;
/// A bar narrower than this is not drawn.
const BAR_MIN: u16 = 3;
/// The CPU and MEM columns (`100%`).
pub const PERCENT: u16 = 4;
/// The AGE column (`119s`, `9.9s`, `59m`).
pub const AGE: u16 = 5;
/// The VIA column (a link's number), shown with several links.
pub const VIA: u16 = 3;

/// Widths of the columns, in cells; a zero bar means no bar columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// NODE.
    pub name: u16,
    /// Each of the two bars.
    pub bar: u16,
    /// STATUS.
    pub status: u16,
    /// True when the VIA column is shown.
    pub via: bool,
}

/// Widths for a table `total` cells wide whose longest name is `name_need` cells and longest
/// status `status_need`, with a VIA column when `via`. Columns are one cell apart.
pub fn widths(total: u16, name_need: u16, status_need: u16, via: bool) -> Widths {
    // NODE, CPU, MEM, AGE, STATUS and maybe VIA, one cell apart.
    let columns = 5 + u16::from(via);
    let fixed = 2 * PERCENT + AGE + status_need + if via { VIA } else { 0 } + (columns - 1);
    let room = total.saturating_sub(fixed);
    let name = name_need.min(NAME_CAP).min(room);
    // Each bar costs its width and one cell of spacing.
    let bar = ((room - name) / 2).saturating_sub(1).min(BAR_MAX);
    Widths {
        name,
        bar: if bar < BAR_MIN { 0 } else { bar },
        status: status_need,
        via,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(w: Widths) -> u16 {
        let columns = 5 + u16::from(w.via) + if w.bar > 0 { 2 } else { 0 };
        w.name
            + 2 * PERCENT
            + AGE
            + w.status
            + 2 * w.bar
            + if w.via { VIA } else { 0 }
            + (columns - 1)
    }

    #[test]
    fn names_first_then_bars_at_80_columns() {
        let paused = "paused until 12:34:56".len() as u16;
        let w = widths(80, 12, paused, false);
        assert_eq!((w.name, w.bar), (12, 14));
        assert!(used(w) <= 80);
        let w = widths(80, 33, paused, false);
        assert_eq!(
            (w.name, w.bar),
            (33, 3),
            "a long name keeps its room, the bars shrink"
        );
        assert!(used(w) <= 80);
        let w = widths(80, 38, paused, false);
        assert_eq!((w.name, w.bar), (38, 0), "the bars went first");
        assert!(used(w) <= 80);
        let w = widths(80, 60, 6, false);
        assert_eq!(w.name, NAME_CAP);
        assert!(used(w) <= 80);
    }

    #[test]
    fn wide_screens_cap_the_bars() {
        let w = widths(160, 33, 21, true);
        assert_eq!((w.name, w.bar), (33, BAR_MAX));
        assert!(used(w) <= 160);
    }

    #[test]
    fn tiny_screens_do_not_overflow() {
        let w = widths(20, 30, 21, false);
        assert_eq!((w.name, w.bar), (0, 0));
    }
}
