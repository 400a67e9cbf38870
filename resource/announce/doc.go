// Package announce tells a link that a cluster address has moved, and asks it
// whether anybody else holds one.
//
// An [Announcer] sends gratuitous ARP (an ARP request and an ARP reply whose
// sender and target IP are the cluster address, RFC 5227 section 3 "ARP
// Announcement") for IPv4 addresses and unsolicited Neighbor Advertisements
// with the Override flag (RFC 4861 section 7.2.6) for IPv6 addresses, repeated
// a few times, spaced apart and rate limited per interface.
//
// [Probe] and [ProbeAll] are a short RFC 5227 style probe: ARP requests with sender IP 0.0.0.0
// (IPv6: Neighbor Solicitations from :: to the solicited-node group, as in
// RFC 4862 duplicate address detection) that any other holder of the address
// answers.
//
// Frames are built with github.com/mdlayher/arp and github.com/mdlayher/ndp
// and written to AF_PACKET sockets (github.com/mdlayher/packet), so neither
// announcing nor probing needs the address, or any address, on the interface.
package announce
