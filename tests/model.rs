//! Property test: random sequences of allocate / clone / drop / downgrade / upgrade /
//! into_raw / from_raw across every pool of a small allocator (so pools fill up, spill
//! and fall back to the heap), checked step by step against a simple model of what each
//! handle should see and what the statistics should say.
#![cfg(not(loom))]

use proptest::prelude::*;
use slotring::{Event, EventAllocator, PoolId, RingPtr, TokenError, WeakRingPtr};

const CAPACITIES: [usize; 5] = [3, 2, 2, 1, 1];

#[derive(Clone, Debug)]
enum Op {
    Allocate { len: usize, event_type: u32 },
    TryAllocate { len: usize },
    Clone(usize),
    Drop(usize),
    Downgrade(usize),
    Upgrade(usize),
    DropWeak(usize),
    IntoRaw(usize),
    FromRaw(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![
        0usize..=64,
        65usize..=256,
        257usize..=1024,
        1025usize..=4096,
        4097usize..=16384,
        16385usize..=20000,
    ];
    prop_oneof![
        3 => (len.clone(), any::<u32>()).prop_map(|(len, event_type)| Op::Allocate { len, event_type }),
        1 => len.prop_map(|len| Op::TryAllocate { len }),
        2 => any::<usize>().prop_map(Op::Clone),
        3 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::Downgrade),
        2 => any::<usize>().prop_map(Op::Upgrade),
        1 => any::<usize>().prop_map(Op::DropWeak),
        1 => any::<usize>().prop_map(Op::IntoRaw),
        2 => any::<usize>().prop_map(Op::FromRaw),
    ]
}

/// What the model knows about one event (one life of one slot).
struct Life {
    payload: Vec<u8>,
    event_type: u32,
    pool: Option<PoolId>,
    /// Strong handles plus parked tokens.
    strong: usize,
    parked: usize,
}

#[derive(Default)]
struct Model {
    lives: Vec<Life>,
    handles: Vec<(RingPtr<Event>, usize)>,
    weaks: Vec<(WeakRingPtr<Event>, usize)>,
    tokens: Vec<(u64, usize)>,
}

impl Model {
    fn live_in(&self, pool: PoolId) -> usize {
        self.lives
            .iter()
            .filter(|l| l.strong > 0 && l.pool == Some(pool))
            .count()
    }

    /// The pool `allocate` must pick: the first class at or above the length's with a
    /// free slot, else the heap.
    fn expected_pool(&self, len: usize) -> Option<PoolId> {
        let mut pool = PoolId::for_len(len);
        while let Some(p) = pool {
            if self.live_in(p) < CAPACITIES[p.index()] {
                return Some(p);
            }
            pool = p.larger();
        }
        None
    }

    fn check(&self, alloc: &EventAllocator) {
        for (handle, life) in &self.handles {
            let life = &self.lives[*life];
            assert_eq!(handle.payload(), &life.payload[..], "payload changed");
            assert_eq!(handle.event_type(), life.event_type);
            assert_eq!(RingPtr::strong_count(handle), life.strong);
        }
        let stats = alloc.stats();
        for pool in PoolId::ALL {
            assert_eq!(stats.pool(pool).in_use, self.live_in(pool), "{pool} in_use");
        }
        let heap_live = self
            .lives
            .iter()
            .filter(|l| l.strong > 0 && l.pool.is_none());
        assert_eq!(stats.heap.in_use, heap_live.count() as u64, "heap in_use");
    }
}

fn payload(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i ^ seed.wrapping_mul(131)) as u8)
        .collect()
}

fn run(ops: Vec<Op>) {
    let alloc = EventAllocator::builder()
        .capacities(CAPACITIES)
        .build()
        .unwrap();
    let mut m = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Allocate { len, event_type } => {
                let bytes = payload(len, step);
                let expected = m.expected_pool(len);
                let ev = alloc
                    .allocate(&bytes, event_type)
                    .expect("allocate never fails");
                assert_eq!(RingPtr::pool_id(&ev), expected, "wrong pool for {len} B");
                m.lives.push(Life {
                    payload: bytes,
                    event_type,
                    pool: expected,
                    strong: 1,
                    parked: 0,
                });
                m.handles.push((ev, m.lives.len() - 1));
            }
            Op::TryAllocate { len } => {
                let bytes = payload(len, step);
                let class = PoolId::for_len(len);
                match alloc.try_allocate(&bytes, 0) {
                    Ok(ev) => {
                        let class = class.expect("try_allocate served an oversized payload");
                        assert!(m.live_in(class) < CAPACITIES[class.index()]);
                        assert_eq!(RingPtr::pool_id(&ev), Some(class));
                        m.lives.push(Life {
                            payload: bytes,
                            event_type: 0,
                            pool: Some(class),
                            strong: 1,
                            parked: 0,
                        });
                        m.handles.push((ev, m.lives.len() - 1));
                    }
                    Err(slotring::AllocError::PoolExhausted { pool }) => {
                        assert_eq!(Some(pool), class);
                        assert_eq!(m.live_in(pool), CAPACITIES[pool.index()]);
                    }
                    Err(slotring::AllocError::TooLarge { len: l, max }) => {
                        assert_eq!((l, max, class), (len, 16384, None));
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
            }
            Op::Clone(i) if !m.handles.is_empty() => {
                let (h, life) = &m.handles[i % m.handles.len()];
                let (h, life) = (h.clone(), *life);
                m.lives[life].strong += 1;
                m.handles.push((h, life));
            }
            Op::Drop(i) if !m.handles.is_empty() => {
                let (h, life) = m.handles.swap_remove(i % m.handles.len());
                drop(h);
                m.lives[life].strong -= 1;
            }
            Op::Downgrade(i) if !m.handles.is_empty() => {
                let (h, life) = &m.handles[i % m.handles.len()];
                m.weaks.push((RingPtr::downgrade(h), *life));
            }
            Op::Upgrade(i) if !m.weaks.is_empty() => {
                let (w, life) = &m.weaks[i % m.weaks.len()];
                let life = *life;
                match w.upgrade() {
                    Some(h) => {
                        assert!(m.lives[life].strong > 0, "upgraded a dead event");
                        assert_eq!(h.payload(), &m.lives[life].payload[..]);
                        m.lives[life].strong += 1;
                        m.handles.push((h, life));
                    }
                    None => assert_eq!(m.lives[life].strong, 0, "live event refused"),
                }
            }
            Op::DropWeak(i) if !m.weaks.is_empty() => {
                drop(m.weaks.swap_remove(i % m.weaks.len()));
            }
            Op::IntoRaw(i) if !m.handles.is_empty() => {
                let (h, life) = m.handles.swap_remove(i % m.handles.len());
                // Every event of an allocator has a token, heap-fallback ones too (their
                // holds are parked in the allocator's table).
                let Ok(token) = RingPtr::into_raw(h) else {
                    panic!("an allocator's event had no token");
                };
                m.lives[life].parked += 1;
                m.tokens.push((token, life));
            }
            Op::FromRaw(i) if !m.tokens.is_empty() => {
                // Tokens stay in the list after use, so stale and reused tokens are tried.
                let (token, life) = m.tokens[i % m.tokens.len()];
                match alloc.from_raw(token) {
                    Ok(h) => {
                        assert!(m.lives[life].parked > 0, "token taken back twice");
                        assert_eq!(h.payload(), &m.lives[life].payload[..]);
                        m.lives[life].parked -= 1;
                        m.handles.push((h, life));
                    }
                    Err(e) => {
                        assert_eq!(m.lives[life].parked, 0, "a parked token was refused");
                        if m.lives[life].strong > 0 {
                            // Still live for other handles: the token itself is used up.
                            assert_eq!(e, TokenError::Released);
                        } else {
                            assert!(matches!(e, TokenError::Released | TokenError::Stale));
                        }
                    }
                }
            }
            _ => {}
        }
        m.check(&alloc);
    }
    // Take back every parked token and drop everything: all pools must be empty.
    for (token, life) in std::mem::take(&mut m.tokens) {
        if m.lives[life].parked > 0 {
            drop(alloc.from_raw(token).unwrap());
            m.lives[life].parked -= 1;
        }
    }
    m.handles.clear();
    assert_eq!(alloc.stats().total_in_use(), 0, "slots leaked");
    assert!(m.weaks.iter().all(|(w, _)| w.upgrade().is_none()));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_handle_sequences_match_the_model(
        ops in prop::collection::vec(op(), 1..if cfg!(miri) { 40 } else { 200 })
    ) {
        run(ops);
    }
}
