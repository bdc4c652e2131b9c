#!/usr/bin/env python3
"""Where the CPU time of folded call stacks goes, as a markdown table per profile.

    scripts/profile-groups.py ours.folded floor.folded ref.folded

Input: `perf script | inferno-collapse-perf --all` output (kernel frames end in `_[k]`), one
stack per line with its weight. Self time: each sample goes to the innermost frame of a known
crate, skipping the generic frames the compiler inlined into it (core, alloc, std collections,
tinyvec, hashbrown); kernel samples go by the system call they are in. Inclusive time: a
sample counts for every listed frame on its stack. Used by scripts/profile.sh; the groups are
those of docs/performance.md, "Profile".
"""

import re
import sys
from collections import Counter

GENERIC = re.compile(
    r"^<*(core::|alloc::|tinyvec|hashbrown|slab|smallvec|std::(?!sys::sync::mutex)|T as |\[|&"
    r"|(u8|u16|u32|u64|usize|i32|i64|bool) as core::)|^\[unknown\]"
)

# First match wins; checked against the frame a sample is given to.
SELF_GROUPS = [
    ("crypto", r"^ring|aes_gcm|gcm_|gfmul|chacha|ChaCha|HeaderProtection|PacketKey|ring_core|aes_hw|rustls::crypto"),
    ("quinn-proto", r"quinn_proto"),
    ("quinn (async: drivers, stream futures, UDP)", r"quinn_udp|quinn::"),
    ("MoQ model and relay", r"moq_transfork::model|moq_relay|moq_cluster"),
    ("MoQ session and transport (the floor: its own code)", r"moq_transfork|moq_load"),
    ("futures combinators", r"futures_util|futures_core|futures::"),
    ("tokio (scheduler, channels, timers)", r"tokio"),
    ("memcpy", r"mem(move|cpy|set|cmp)"),
    ("allocator", r"malloc|free|_rjem|rallocx|sdallocx|mallocx|je_|_int_|__rust_(de)?alloc|tcache"),
    ("locks (std and parking_lot mutexes)", r"mutex|Mutex|parking_lot"),
]
OTHER = "bytes, tracing, other"

KERNEL_GROUPS = [
    ("kernel: UDP send (sendmsg, GSO, loopback delivery)", r"sys_sendmsg|sys_sendmmsg"),
    ("kernel: UDP receive (recvmmsg, GRO)", r"sys_recvmmsg|sys_recvmsg|sys_recvfrom"),
    ("kernel: waking and parking (futex, epoll_wait)", r"sys_futex|epoll_wait|epoll_pwait"),
]
KERNEL_OTHER = "kernel: other system calls, context switches, interrupts"

INCLUSIVE = [
    ("quinn's connection drivers (`ConnectionDriver::poll`)", r"ConnectionDriver as core::future::future::Future>::poll"),
    ("of which packet building and encryption (`poll_transmit`)", r"quinn_proto::connection::Connection::poll_transmit$"),
    ("of which the kernel's `sendmsg`", r"__sys_sendmsg"),
    ("quinn's endpoint driver (`EndpointDriver::poll`)", r"EndpointDriver as core::future::future::Future>::poll"),
    ("anything under `moq_transfork` or `moq_relay`", r"moq_transfork|moq_relay|moq_cluster"),
    ("tokio workers parking (`Context::park`)", r"worker::Context::park"),
]


def self_group(stack):
    if stack[-1].endswith("_[k]"):
        joined = ";".join(stack)
        return next((g for g, p in KERNEL_GROUPS if re.search(p, joined)), KERNEL_OTHER)
    frame = next((f for f in reversed(stack) if not GENERIC.search(f)), stack[-1])
    return next((g for g, p in SELF_GROUPS if re.search(p, frame)), OTHER)


def load(path):
    groups, inclusive, total = Counter(), Counter(), 0
    with open(path) as lines:
        for line in lines:
            frames, weight = line.rstrip().rsplit(" ", 1)
            stack, weight = frames.split(";"), int(weight)
            total += weight
            groups[self_group(stack)] += weight
            for name, pattern in INCLUSIVE:
                if any(re.search(pattern, f) for f in stack):
                    inclusive[name] += weight
    return groups, inclusive, total


def main():
    paths = sys.argv[1:]
    if not paths:
        sys.exit(__doc__)
    names = [p.rsplit("/", 1)[-1].removesuffix(".folded") for p in paths]
    profiles = [load(p) for p in paths]
    first_groups, _, first_total = profiles[0]
    header = "| {} | " + " | ".join(names) + " |"
    rule = "|---|" + "---|" * len(names)

    print("Self time, % of each profile's CPU time:\n")
    print(header.format("where"))
    print(rule)
    keys = set().union(*(g for g, _, _ in profiles))
    for key in sorted(keys, key=lambda k: -first_groups[k] / first_total):
        cells = " | ".join(f"{100 * g[key] / t:.1f}" for g, _, t in profiles)
        print(f"| {key} | {cells} |")

    print("\nInclusive, % of each profile's CPU time:\n")
    print(header.format("frame"))
    print(rule)
    for name, _ in INCLUSIVE:
        cells = " | ".join(f"{100 * i[name] / t:.1f}" for _, i, t in profiles)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
