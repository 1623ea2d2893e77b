//! A packet an ICMP socket received, as the icmp prober reads it: with or without an IPv4
//! header, as ICMP or ICMPv6. Any bytes must give a reply or nothing, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::probe::icmp::parse_reply;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, packet)) = data.split_first() else { return };
    if let Some(reply) = parse_reply(packet, mode & 1 != 0, mode & 2 != 0) {
        assert!(reply.data.len() + 8 <= packet.len());
    }
});
