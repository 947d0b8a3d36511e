//! IPv6 addresses over netlink, for real: on one end of a veth pair (carrier up, so the kernel
//! runs duplicate-address detection) in a namespace of the test thread's own. An address
//! added plainly is `tentative` at first; one added with `nodad` never is. Needs root.

use std::net::Ipv6Addr;
use std::process::Command;

use lvs_netinfo::{AddressChange, Ipv6Address, Netlink};

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args:?} failed");
}

fn find(nl: &mut Netlink, addr: Ipv6Addr) -> Option<Ipv6Address> {
    nl.ipv6_addresses()
        .unwrap()
        .into_iter()
        .find(|a| a.addr == addr)
}

#[test]
fn nodad_addresses_are_never_tentative_plain_ones_are_at_first() {
    if !lvs_testsupport::root_or_skip("nodad_addresses_are_never_tentative_plain_ones_are_at_first")
    {
        return;
    }
    std::thread::spawn(|| {
        // SAFETY: unshare(2) takes no pointers; it moves only this thread (which ends with
        // the test) into a new network namespace, which programs it starts inherit.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
        ip(&["link", "set", "vb", "up"]);
        ip(&["link", "set", "va", "up"]);
        let mut nl = Netlink::open().unwrap();
        let va = nl.link_by_name("va").unwrap().ifindex;
        let plain: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();

        assert_eq!(
            nl.add_ipv6_address(va, plain, 64, false).unwrap(),
            AddressChange::Added
        );
        let a = find(&mut nl, plain).expect("the plain address is listed");
        assert_eq!((a.ifindex, a.prefix_len), (va, 64));
        assert!(a.tentative && !a.nodad, "{a:?}");

        assert_eq!(
            nl.add_ipv6_address(va, vip, 128, true).unwrap(),
            AddressChange::Added
        );
        let a = find(&mut nl, vip).expect("the nodad address is listed");
        assert!(!a.tentative && a.nodad && !a.dad_failed, "{a:?}");
        assert_eq!(
            nl.add_ipv6_address(va, vip, 128, true).unwrap(),
            AddressChange::AlreadyPresent
        );

        assert_eq!(
            nl.del_ipv6_address(va, vip, 128).unwrap(),
            AddressChange::Removed
        );
        assert_eq!(find(&mut nl, vip), None);
        assert_eq!(
            nl.del_ipv6_address(va, vip, 128).unwrap(),
            AddressChange::AlreadyAbsent
        );
        let e = nl.add_ipv6_address(va, vip, 129, true).unwrap_err();
        assert!(e.to_string().contains("/129"), "{e}");
    })
    .join()
    .unwrap();
}
