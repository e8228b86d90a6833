//! `validate` never panics, and whatever it accepts satisfies every invariant.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use rampart_core::event::EventView;
use rampart_core::validate::{Limits, Rejection, validate, validate_batch};

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn accepted_events_satisfy_invariants(
        time_ms in prop_oneof![any::<i64>(), 1_699_000_000_000i64..1_701_000_000_000],
        now in prop_oneof![Just(None), any::<i64>().prop_map(Some), Just(Some(1_700_000_000_000i64))],
        src_len in prop_oneof![0usize..20, Just(4), Just(16)],
        dst_len in prop_oneof![0usize..20, Just(4), Just(16)],
        ports in prop_oneof![(any::<u32>(), any::<u32>()), (0u32..70_000, 0u32..70_000)],
        protocol in prop_oneof![any::<u32>(), 0u32..300],
        kind in prop_oneof![any::<i32>(), -2i32..8],
        id_lens in (0usize..300, 0usize..300),
    ) {
        let src = vec![1u8; src_len];
        let dst = vec![2u8; dst_len];
        let eid = vec![b'e'; id_lens.0];
        let sid = vec![b's'; id_lens.1];
        let ev = EventView {
            time_ms, src_ip: &src, dst_ip: &dst, src_port: ports.0, dst_port: ports.1,
            protocol, kind, rule_id: 0, event_id: &eid, packets: 0, bytes: 0, sensor_id: &sid,
        };
        let l = Limits::default();
        let r = validate(&ev, now, &l);
        prop_assert_eq!(validate_batch(&[ev], now, &l), r);
        match r {
            Ok(()) => {
                prop_assert!(time_ms > 0);
                if let Some(now) = now {
                    prop_assert!(i128::from(time_ms) <= i128::from(now) + i128::from(l.max_future_ms));
                    prop_assert!(i128::from(time_ms) >= i128::from(now) - i128::from(l.max_past_ms));
                }
                prop_assert!(src_len == 4 || src_len == 16);
                prop_assert!(dst_len == 4 || dst_len == 16);
                prop_assert!(ports.0 <= 65535 && ports.1 <= 65535);
                prop_assert!(protocol <= 255);
                prop_assert!((0..=5).contains(&kind));
                prop_assert!(id_lens.0 <= l.max_id_len && id_lens.1 <= l.max_id_len);
            }
            Err(reason) => {
                prop_assert!(Rejection::ALL.contains(&reason));
                prop_assert!(!matches!(reason, Rejection::EmptyBatch | Rejection::BatchTooLarge | Rejection::MalformedProtobuf));
            }
        }
    }
}
