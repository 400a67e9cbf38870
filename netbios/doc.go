// Package netbios gives each cluster address its NetBIOS interface (RFC 1001/1002
// over UDP 137): a Responder that answers name and node-status queries sent to the
// address, and a WINS client that registers, refreshes and releases the address's
// names and reports conflicts. The wire format lives in package nbns.
//
// Order (see ../shared/NETBIOS.md): online = address up → Dial → Responder.Run →
// WINS Client.Run; offline = cancel the client (it releases every name from every
// address) → stop the responder → close the socket → remove the address.
package netbios
