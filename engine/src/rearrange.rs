//! Making a room free for a stay by moving other reservations (issue #16, "no sellable
//! stay refused").
//!
//! A room type may have a free room every night of a stay and still no single room free
//! for all of it: two one-night bookings on consecutive nights spread over two rooms
//! leave no room for a two-night stay across both. Future reservations that are not pinned
//! may move between rooms of their type, so the engine looks for a few such moves that
//! free one room for the whole stay, and books it together with them.
//!
//! This module only plans: the caller describes the type's rooms as they are (what holds
//! each night, and whether it may move) and gets back the target room and the moves, or
//! `None`. The search is an ejection chain with iterative deepening: a reservation in the
//! target room's way goes to another room, whose reservations in *its* way go on to others,
//! and so on, at most [`MAX_MOVES`] moves in all and [`SEARCH_BUDGET`] placements tried.
//! Within those bounds it is exhaustive, so a plan it returns moves as few reservations as
//! any plan can, and `None` means no plan of at most [`MAX_MOVES`] moves exists (or the
//! budget ran out, which the caller treats the same: sold out).

use jiff::civil::Date;

use crate::ids::ReservationId;

/// Most reservations one booking may move: every moved guest gets a `reservation.moved`,
/// and a plan is applied as one atomic change, so it stays small.
pub const MAX_MOVES: usize = 4;

/// Most placements one search tries (each is a few comparisons per reservation of one
/// room), so a large, full type costs a bounded amount of work per refused booking.
pub const SEARCH_BUDGET: usize = 50_000;

/// Something holding nights `[from, to)` of a room.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Held {
    /// The reservation; for what is not one (an out-of-order range), any id, with
    /// `movable` false.
    pub id: ReservationId,
    /// First night held in this room.
    pub from: Date,
    /// First night not held.
    pub to: Date,
    /// Whether it may go to another room of the type: a future reservation, not checked
    /// in, not pinned to its room.
    pub movable: bool,
}

impl Held {
    fn overlaps(&self, from: Date, to: Date) -> bool {
        self.from < to && from < self.to
    }
}

/// One move of a plan.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Move {
    /// The reservation.
    pub id: ReservationId,
    /// Index of the room it leaves (in the rooms the plan was made for).
    pub from_room: usize,
    /// Index of the room it goes to.
    pub to_room: usize,
}

/// A way to book a stay: the room it gets, and the moves that free it first.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Plan {
    /// Index of the room the stay gets.
    pub room: usize,
    /// The moves, in the order they were found (their order does not matter: applied
    /// together, no two reservations of a room overlap).
    pub moves: Vec<Move>,
}

/// How to free a room of `rooms` (each room's holdings, in any order, disjoint within a
/// room) for the nights `[from, to)` with as few moves as possible, at most
/// [`MAX_MOVES`]. A room already free gives a plan without moves.
pub fn plan(rooms: &[Vec<Held>], from: Date, to: Date) -> Option<Plan> {
    if from >= to {
        return None;
    }
    // Rooms already free: no moves.
    if let Some(room) = rooms
        .iter()
        .position(|held| held.iter().all(|h| !h.overlaps(from, to)))
    {
        return Some(Plan {
            room,
            moves: Vec::new(),
        });
    }
    // The targets: rooms whose holdings in the stay's way may all move, fewest first.
    let mut targets: Vec<(usize, usize)> = rooms
        .iter()
        .enumerate()
        .filter_map(|(i, held)| {
            let mut in_way = 0;
            for h in held.iter().filter(|h| h.overlaps(from, to)) {
                if !h.movable {
                    return None;
                }
                in_way += 1;
            }
            Some((in_way, i))
        })
        .collect();
    targets.sort_unstable();
    let mut search = Search {
        rooms: rooms
            .iter()
            .map(|held| held.iter().map(|h| Slot::Stays(*h)).collect())
            .collect(),
        budget: SEARCH_BUDGET,
        moves: Vec::new(),
    };
    for limit in 1..=MAX_MOVES {
        for &(in_way, target) in &targets {
            if in_way > limit {
                break;
            }
            let displaced = search.take_overlapping(target, from, to);
            search.rooms[target].push(Slot::Stay { from, to });
            let queue: Vec<(Held, usize)> = displaced.iter().map(|h| (*h, target)).collect();
            let found = search.place_all(queue, limit);
            // Undone whether found or not (the plan is in `moves`): the working state is
            // the rooms as they are again for the next target.
            search.rooms[target].retain(|s| !matches!(s, Slot::Stay { .. }));
            search.rooms[target].extend(displaced.into_iter().map(Slot::Stays));
            if found {
                return Some(Plan {
                    room: target,
                    moves: std::mem::take(&mut search.moves),
                });
            }
            if search.budget == 0 {
                return None;
            }
        }
    }
    None
}

/// Whether `plan` still frees its room for `[from, to)` in `rooms` as they are now (the
/// rooms are read again, under lock, before a plan made from an earlier reading is
/// applied): every moved reservation is where the plan says, still movable and of the same
/// nights; after the moves no two holders of a room overlap; the stay's room is free.
pub fn fits(rooms: &[Vec<Held>], plan: &Plan, from: Date, to: Date) -> bool {
    let one = ManyPlan {
        rooms: vec![plan.room],
        moves: plan.moves.clone(),
    };
    fits_many(rooms, &one, from, to)
}

/// A way to book `count` rooms for one stay (a multi-room booking's rooms of one type):
/// the room each gets, and the moves that free them, each reservation moved at most once
/// (from the room it is in to the room it ends in).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ManyPlan {
    /// Index of the room each of the stays gets, all different.
    pub rooms: Vec<usize>,
    /// The moves, as in [`Plan::moves`].
    pub moves: Vec<Move>,
}

/// How to free `count` rooms of `rooms` for the nights `[from, to)`: one after another,
/// each the way [`plan`] frees one (a room already free first, else the fewest moves, at
/// most [`MAX_MOVES`] for each), with the stays placed so far holding their rooms and the
/// reservations moved so far where they went (they may move again). `None` when some stay
/// finds no room. Not exhaustive across the stays: each one's plan is the fewest moves
/// given the ones before.
pub fn plan_many(rooms: &[Vec<Held>], from: Date, to: Date, count: usize) -> Option<ManyPlan> {
    let mut now: Vec<Vec<Held>> = rooms.to_vec();
    // Where each moved reservation was first, and where it is now.
    let mut moved: Vec<(ReservationId, usize, usize)> = Vec::new();
    let mut taken = Vec::with_capacity(count);
    for _ in 0..count {
        let one = plan(&now, from, to)?;
        let mut arriving = Vec::with_capacity(one.moves.len());
        for m in &one.moves {
            let i = now[m.from_room].iter().position(|h| h.id == m.id)?;
            arriving.push((now[m.from_room].swap_remove(i), m.to_room));
            match moved.iter_mut().find(|(id, _, _)| *id == m.id) {
                Some((_, _, at)) => *at = m.to_room,
                None => moved.push((m.id, m.from_room, m.to_room)),
            }
        }
        for (h, room) in arriving {
            now[room].push(h);
        }
        // The stay holds its room from now on; nothing moves it.
        now[one.room].push(Held {
            id: ReservationId(uuid::Uuid::nil()),
            from,
            to,
            movable: false,
        });
        taken.push(one.room);
    }
    Some(ManyPlan {
        rooms: taken,
        moves: moved
            .into_iter()
            .filter(|(_, first, last)| first != last)
            .map(|(id, from_room, to_room)| Move {
                id,
                from_room,
                to_room,
            })
            .collect(),
    })
}

/// Whether `plan` still frees its rooms for `[from, to)` in `rooms` as they are now, as
/// [`fits`] checks one: every moved reservation is where the plan says, still movable; its
/// rooms are different; after the moves, with the stays in their rooms, no two holders of
/// a room overlap.
pub fn fits_many(rooms: &[Vec<Held>], plan: &ManyPlan, from: Date, to: Date) -> bool {
    let mut after: Vec<Vec<Held>> = rooms.to_vec();
    let mut moved: Vec<(Held, usize)> = Vec::with_capacity(plan.moves.len());
    for m in &plan.moves {
        let (Some(source), true) = (after.get_mut(m.from_room), m.to_room < rooms.len()) else {
            return false;
        };
        let Some(i) = source.iter().position(|h| h.id == m.id && h.movable) else {
            return false;
        };
        moved.push((source.swap_remove(i), m.to_room));
    }
    for (h, to_room) in moved {
        after[to_room].push(h);
    }
    for (i, room) in plan.rooms.iter().enumerate() {
        if plan.rooms[..i].contains(room) {
            return false;
        }
        let Some(target) = after.get_mut(*room) else {
            return false;
        };
        target.push(Held {
            id: ReservationId(uuid::Uuid::nil()),
            from,
            to,
            movable: false,
        });
    }
    from < to
        && after.iter().all(|held| {
            held.iter()
                .enumerate()
                .all(|(i, a)| held.iter().skip(i + 1).all(|b| !a.overlaps(b.from, b.to)))
        })
}

/// A room's night-holder during the search.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// Where it was before this plan.
    Stays(Held),
    /// Moved here by this plan: never displaced again.
    Moved(Held),
    /// The stay the plan is for.
    Stay {
        /// First night.
        from: Date,
        /// First night not held.
        to: Date,
    },
}

impl Slot {
    fn overlaps(&self, from: Date, to: Date) -> bool {
        match self {
            Slot::Stays(h) | Slot::Moved(h) => h.overlaps(from, to),
            Slot::Stay { from: f, to: t } => *f < to && from < *t,
        }
    }
}

/// The search's working state: every room's holders as the plan so far leaves them.
struct Search {
    /// Per room, what holds its nights.
    rooms: Vec<Vec<Slot>>,
    /// Placements left to try.
    budget: usize,
    /// The moves of the plan being built (the found plan's, once found).
    moves: Vec<Move>,
}

impl Search {
    /// Removes and returns the (movable) holders of `room` in `[from, to)`.
    fn take_overlapping(&mut self, room: usize, from: Date, to: Date) -> Vec<Held> {
        let mut taken = Vec::new();
        self.rooms[room].retain(|slot| match slot {
            Slot::Stays(h) if h.overlaps(from, to) => {
                taken.push(*h);
                false
            }
            _ => true,
        });
        taken
    }

    /// Whether every reservation of `queue` (each with the room it left) can be placed,
    /// with at most `moves_left` moves in all (each placement is one). On success the
    /// moves are in `self.moves`; on failure `self` is as it was.
    fn place_all(&mut self, mut queue: Vec<(Held, usize)>, moves_left: usize) -> bool {
        let Some((held, left)) = queue.pop() else {
            return true;
        };
        if queue.len() + 1 > moves_left {
            return false;
        }
        // Rooms to try: those where it fits at once first, then by how many it displaces.
        let mut options: Vec<(usize, usize)> = Vec::new();
        for (room, slots) in self.rooms.iter().enumerate() {
            if room == left {
                continue;
            }
            let mut in_way = 0;
            let mut possible = true;
            for slot in slots.iter().filter(|s| s.overlaps(held.from, held.to)) {
                match slot {
                    Slot::Stays(h) if h.movable => in_way += 1,
                    _ => {
                        possible = false;
                        break;
                    }
                }
            }
            // Each displaced reservation needs a move of its own.
            if possible && queue.len() + 1 + in_way <= moves_left {
                options.push((in_way, room));
            }
        }
        options.sort_unstable();
        for (_, room) in options {
            if self.budget == 0 {
                return false;
            }
            self.budget -= 1;
            let displaced = self.take_overlapping(room, held.from, held.to);
            self.rooms[room].push(Slot::Moved(held));
            self.moves.push(Move {
                id: held.id,
                from_room: left,
                to_room: room,
            });
            let mut next = queue.clone();
            next.extend(displaced.iter().map(|h| (*h, room)));
            if self.place_all(next, moves_left - 1) {
                return true;
            }
            // Undo exactly this step: the deeper steps undid theirs, but put what they
            // displaced back at the end of their rooms, so this room's last slot need not
            // be the one pushed above.
            self.moves.pop();
            self.rooms[room].retain(|s| !matches!(s, Slot::Moved(h) if h.id == held.id));
            self.rooms[room].extend(displaced.into_iter().map(Slot::Stays));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;
    use proptest::prelude::*;

    use super::*;

    fn day(n: i64) -> Date {
        date(2030, 1, 1)
            .checked_add(jiff::Span::new().days(n))
            .unwrap()
    }

    fn held(id: u128, from: i64, to: i64, movable: bool) -> Held {
        Held {
            id: ReservationId(uuid::Uuid::from_u128(id)),
            from: day(from),
            to: day(to),
            movable,
        }
    }

    /// The rooms after `plan`'s moves, with the stay in its room (as an unmovable holder
    /// of id 0); panics if a move names a reservation that is not where it says.
    fn apply(rooms: &[Vec<Held>], plan: &Plan, from: i64, to: i64) -> Vec<Vec<Held>> {
        let mut after = rooms.to_vec();
        for m in &plan.moves {
            let i = after[m.from_room]
                .iter()
                .position(|h| h.id == m.id)
                .expect("the moved reservation is in the room it leaves");
            let h = after[m.from_room].remove(i);
            assert!(h.movable, "moved an unmovable holder: {h:?}");
            after[m.to_room].push(h);
        }
        after[plan.room].push(held(0, from, to, false));
        after
    }

    fn disjoint(rooms: &[Vec<Held>]) -> bool {
        rooms.iter().all(|held| {
            held.iter()
                .enumerate()
                .all(|(i, a)| held.iter().skip(i + 1).all(|b| !a.overlaps(b.from, b.to)))
        })
    }

    /// The example: two rooms, a night booked in each on consecutive nights; a
    /// two-night stay across both gets a room once one of them moves.
    #[test]
    fn two_one_night_stays_in_two_rooms_make_way_for_a_two_night_stay() {
        let rooms = vec![vec![held(1, 0, 1, true)], vec![held(2, 1, 2, true)]];
        let p = plan(&rooms, day(0), day(2)).expect("a plan");
        assert_eq!(p.moves.len(), 1);
        assert!(disjoint(&apply(&rooms, &p, 0, 2)));
        // Pinned, both: no plan (each night has a free room, but no room has both).
        let pinned = vec![vec![held(1, 0, 1, false)], vec![held(2, 1, 2, false)]];
        assert_eq!(plan(&pinned, day(0), day(2)), None);
        // A room already free: no moves.
        let free = vec![vec![held(1, 0, 1, true)], vec![]];
        assert_eq!(
            plan(&free, day(0), day(2)),
            Some(Plan {
                room: 1,
                moves: vec![]
            })
        );
    }

    /// A chain: the stay's way is cleared by moving a reservation into a room from which
    /// another one must move on.
    #[test]
    fn an_ejection_chain_of_two_moves() {
        // Room 0: night 1 (movable). Room 1: nights 0 and 2 pinned, night 1 free.
        // Room 2: night 0 movable, night 1 pinned. Stay: nights 0–1.
        let rooms = vec![
            vec![held(1, 1, 2, true)],
            vec![held(2, 0, 1, false), held(3, 2, 3, false)],
            vec![held(4, 0, 1, true), held(5, 1, 2, false)],
        ];
        let p = plan(&rooms, day(0), day(2)).expect("a plan");
        assert!(disjoint(&apply(&rooms, &p, 0, 2)));
        assert!(p.moves.len() <= 2, "{p:?}");
    }

    /// The fewest moves, found by trying every assignment of the movable reservations to
    /// rooms (tiny instances only).
    fn fewest_moves(rooms: &[Vec<Held>], from: i64, to: i64) -> Option<usize> {
        let movable: Vec<(usize, Held)> = rooms
            .iter()
            .enumerate()
            .flat_map(|(r, held)| held.iter().filter(|h| h.movable).map(move |h| (r, *h)))
            .collect();
        let fixed: Vec<Vec<Held>> = rooms
            .iter()
            .map(|held| held.iter().filter(|h| !h.movable).copied().collect())
            .collect();
        let n = rooms.len();
        let mut best: Option<usize> = None;
        let combos = n.pow(movable.len() as u32);
        for code in 0..combos {
            let mut c = code;
            let mut layout = fixed.clone();
            let mut moved = 0;
            for (home, h) in &movable {
                let room = c % n;
                c /= n;
                moved += usize::from(room != *home);
                layout[room].push(*h);
            }
            if best.is_some_and(|b| moved >= b) || !disjoint(&layout) {
                continue;
            }
            let fits = layout
                .iter()
                .any(|held| held.iter().all(|h| !h.overlaps(day(from), day(to))));
            if fits {
                best = Some(moved);
            }
        }
        best
    }

    /// `rooms` rooms, each with up to `per_room` holders of 1 to `max_len` nights on a
    /// horizon of `nights` nights, disjoint by construction (consecutive segments after
    /// gaps), movable with probability `movable`.
    fn rooms_of(
        rooms: std::ops::RangeInclusive<usize>,
        per_room: usize,
        max_len: i64,
        nights: i64,
        movable: f64,
    ) -> impl Strategy<Value = Vec<Vec<Held>>> {
        let segment = (0i64..3, 1i64..=max_len, prop::bool::weighted(movable));
        prop::collection::vec(prop::collection::vec(segment, 0..=per_room), rooms).prop_map(
            move |rooms| {
                let mut id = 0u128;
                rooms
                    .into_iter()
                    .map(|segments| {
                        let mut at = 0;
                        let mut held_here = Vec::new();
                        for (gap, len, movable) in segments {
                            let from = at + gap;
                            let to = from + len;
                            if to > nights {
                                break;
                            }
                            id += 1;
                            held_here.push(held(id, from, to, movable));
                            at = to;
                        }
                        held_here
                    })
                    .collect()
            },
        )
    }

    /// Tiny types, small enough for exhaustive search: 2–3 rooms, 6 nights.
    fn rooms_strategy() -> impl Strategy<Value = Vec<Vec<Held>>> {
        rooms_of(2..=3, 3, 2, 6, 0.5)
    }

    /// Larger types than exhaustive search can check: 4–12 rooms on a 30-night horizon.
    fn big_rooms_strategy() -> impl Strategy<Value = Vec<Vec<Held>>> {
        rooms_of(4..=12, 8, 4, 30, 0.8)
    }

    /// A plan made from an earlier reading no longer fits when the rooms changed in its
    /// way: a moved reservation was pinned meanwhile, left, or changed its nights; another
    /// booking took a night of the stay's room or of a move's destination.
    #[test]
    fn a_plan_stops_fitting_when_the_rooms_changed() {
        let rooms = vec![vec![held(1, 0, 1, true)], vec![held(2, 1, 2, true)]];
        let p = plan(&rooms, day(0), day(2)).expect("one move frees a room");
        assert!(fits(&rooms, &p, day(0), day(2)));
        let moved = p.moves[0];
        let mut pinned = rooms.clone();
        pinned[moved.from_room][0].movable = false;
        assert!(!fits(&pinned, &p, day(0), day(2)), "pinned meanwhile");
        let mut gone = rooms.clone();
        gone[moved.from_room].clear();
        assert!(!fits(&gone, &p, day(0), day(2)), "left meanwhile");
        let mut longer = rooms.clone();
        longer[moved.from_room][0].to = day(3);
        assert!(!fits(&longer, &p, day(0), day(2)), "its stay grew");
        let mut taken = rooms.clone();
        taken[p.room].push(held(3, 0, 1, false));
        taken[p.room].retain(|h| h.id != moved.id);
        assert!(!fits(&taken, &p, day(0), day(2)), "the stay's room taken");
        let mut blocked = rooms.clone();
        blocked[moved.to_room].push(held(4, 0, 1, false));
        assert!(!fits(&blocked, &p, day(0), day(2)), "the destination taken");
        let outside = Plan {
            room: 5,
            moves: Vec::new(),
        };
        assert!(!fits(&rooms, &outside, day(0), day(2)), "no such room");
        let mut nowhere = p.clone();
        nowhere.moves[0].to_room = rooms.len();
        assert!(!fits(&rooms, &nowhere, day(0), day(2)), "a move to no room");
        assert!(!fits(&rooms, &p, day(2), day(2)), "an empty stay");
    }

    /// The rooms after a multi-room plan: its moves (each of a movable reservation that is
    /// where the plan says), and an unmovable stay of id 0 in each of its rooms.
    fn apply_many(rooms: &[Vec<Held>], plan: &ManyPlan, from: i64, to: i64) -> Vec<Vec<Held>> {
        let one = |room: usize, moves: Vec<Move>| Plan { room, moves };
        let mut after = apply(rooms, &one(plan.rooms[0], plan.moves.clone()), from, to);
        for room in &plan.rooms[1..] {
            after[*room].push(held(0, from, to, false));
        }
        after
    }

    /// Two rooms for a two-night stay in three rooms where each night has two free but no
    /// room both: two moves make them; a pinned blocker leaves one short.
    #[test]
    fn two_rooms_for_one_stay_by_moving_others() {
        // Room 0: night 0. Room 1: night 1. Room 2: nights 0 and 1 free.
        let rooms = vec![vec![held(1, 0, 1, true)], vec![held(2, 1, 2, true)], vec![]];
        let p = plan_many(&rooms, day(0), day(2), 2).expect("a plan");
        assert_eq!(p.rooms.len(), 2);
        assert_ne!(p.rooms[0], p.rooms[1]);
        assert_eq!(p.rooms[0], 2, "the free room first, without moves");
        assert_eq!(p.moves.len(), 1, "{p:?}");
        assert!(disjoint(&apply_many(&rooms, &p, 0, 2)));
        assert!(fits_many(&rooms, &p, day(0), day(2)));
        // Three rooms for it: the two moved ones have nowhere to go.
        assert_eq!(plan_many(&rooms, day(0), day(2), 3), None);
        // One pinned: only the free room.
        let mut pinned = rooms.clone();
        pinned[0][0].movable = false;
        pinned[1][0].movable = false;
        assert_eq!(plan_many(&pinned, day(0), day(2), 2), None);
        assert!(plan_many(&pinned, day(0), day(2), 1).is_some());
        // The same room twice, or a room taken meanwhile, does not fit.
        let twice = ManyPlan {
            rooms: vec![2, 2],
            moves: Vec::new(),
        };
        assert!(!fits_many(&rooms, &twice, day(0), day(2)));
        let mut taken = rooms.clone();
        taken[2].push(held(9, 1, 2, false));
        assert!(!fits_many(&taken, &p, day(0), day(2)));
    }

    /// Two rooms for a two-night stay in four rooms, each holding one of four one-night
    /// stays: two different reservations move, one for each room freed, both listed.
    #[test]
    fn two_rooms_freed_by_two_different_moves() {
        let rooms = vec![
            vec![held(1, 0, 1, true)],
            vec![held(2, 1, 2, true)],
            vec![held(3, 0, 1, true)],
            vec![held(4, 1, 2, true)],
        ];
        let p = plan_many(&rooms, day(0), day(2), 2).expect("a plan");
        assert_eq!(p.moves.len(), 2, "{p:?}");
        assert_ne!(p.moves[0].id, p.moves[1].id);
        assert!(disjoint(&apply_many(&rooms, &p, 0, 2)), "{p:?}");
        assert!(fits_many(&rooms, &p, day(0), day(2)));
        // A move to no room, or no nights at all, never fits.
        let mut nowhere = p.clone();
        nowhere.moves[0].to_room = rooms.len();
        assert!(!fits_many(&rooms, &nowhere, day(0), day(2)));
        assert!(!fits_many(&rooms, &p, day(2), day(2)), "an empty stay");
        let outside = ManyPlan {
            rooms: vec![rooms.len()],
            moves: Vec::new(),
        };
        assert!(!fits_many(&rooms, &outside, day(0), day(2)), "no such room");
        // A moved one pinned, or gone, meanwhile.
        let moved = p.moves[0];
        let mut pinned = rooms.clone();
        pinned[moved.from_room][0].movable = false;
        assert!(!fits_many(&pinned, &p, day(0), day(2)), "pinned meanwhile");
        let mut gone = rooms.clone();
        gone[moved.from_room].clear();
        assert!(!fits_many(&gone, &p, day(0), day(2)), "left meanwhile");
    }

    proptest! {
        /// A plan for several rooms is sound (each moved reservation movable and moved once,
        /// the rooms different, no overlap after the moves with the stays in place), fits
        /// the rooms it was made for, frees rooms already free without moves, and for one
        /// room is [`plan`]'s.
        #[test]
        fn plans_for_several_rooms_are_sound(
            rooms in rooms_of(2..=6, 4, 3, 12, 0.7),
            from in 0i64..10,
            len in 1i64..3,
            count in 1usize..=3,
        ) {
            let to = (from + len).min(12);
            let found = plan_many(&rooms, day(from), day(to), count);
            if let Some(p) = &found {
                prop_assert_eq!(p.rooms.len(), count);
                let mut ids: Vec<_> = p.moves.iter().map(|m| m.id).collect();
                ids.sort();
                ids.dedup();
                prop_assert_eq!(ids.len(), p.moves.len(), "moved once each: {:?}", p);
                prop_assert!(p.moves.len() <= MAX_MOVES * count);
                prop_assert!(disjoint(&apply_many(&rooms, p, from, to)), "{p:?}");
                prop_assert!(fits_many(&rooms, p, day(from), day(to)), "{p:?}");
            }
            let free = rooms
                .iter()
                .filter(|held| held.iter().all(|h| !h.overlaps(day(from), day(to))))
                .count();
            if free >= count {
                let p = found.clone().expect("free rooms are enough");
                prop_assert!(p.moves.is_empty(), "{p:?}");
            }
            if count == 1 {
                let one = plan(&rooms, day(from), day(to));
                prop_assert_eq!(found.map(|p| (p.rooms[0], p.moves)), one.map(|p| (p.room, p.moves)));
            }
        }

        /// On larger types every plan is sound and within MAX_MOVES; and whenever some
        /// night of the stay has no room that is free or holds only movable reservations
        /// that night, there is no plan.
        #[test]
        fn plans_on_larger_types_are_sound(
            rooms in big_rooms_strategy(),
            from in 0i64..28,
            len in 1i64..6,
        ) {
            let to = (from + len).min(30);
            let found = plan(&rooms, day(from), day(to));
            if let Some(p) = &found {
                prop_assert!(p.moves.len() <= MAX_MOVES);
                prop_assert!(disjoint(&apply(&rooms, p, from, to)), "{p:?}");
            }
            let blocked_night = (from..to).any(|n| {
                rooms.iter().all(|held| held.iter().any(|h| !h.movable && h.overlaps(day(n), day(n + 1))))
            });
            if blocked_night {
                prop_assert_eq!(found, None);
            }
        }

        /// Sound (the moves are of movable reservations, leave every room without overlap
        /// and the stay's room free) and as good as exhaustive search: a plan exactly when
        /// some layout within MAX_MOVES frees a room, with as few moves as the best one.
        #[test]
        fn plans_are_sound_and_minimal(
            rooms in rooms_strategy(),
            from in 0i64..5,
            len in 1i64..3,
        ) {
            let to = (from + len).min(6);
            let found = plan(&rooms, day(from), day(to));
            let best = fewest_moves(&rooms, from, to).filter(|m| *m <= MAX_MOVES);
            match (&found, best) {
                (Some(p), Some(b)) => {
                    prop_assert!(disjoint(&apply(&rooms, p, from, to)), "{p:?}");
                    prop_assert_eq!(p.moves.len(), b, "{:?}", p);
                    prop_assert!(fits(&rooms, p, day(from), day(to)), "{p:?}");
                }
                (None, None) => {}
                (found, best) => prop_assert!(false, "plan {found:?}, exhaustive search {best:?}"),
            }
        }
    }
}
