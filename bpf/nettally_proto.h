/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Wire constants the BPF parsers share (vmlinux.h carries types, not these
 * macros). The trailing underscore keeps IPPROTO_* clear of the enum values
 * vmlinux.h may define under the plain names.
 */
#ifndef NETTALLY_PROTO_H
#define NETTALLY_PROTO_H

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_P_PPP_DISC 0x8863
#define ETH_P_PPP_SES 0x8864
#define PPP_IP 0x0021
#define PPP_IPV6 0x0057

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_MH_ 135

#define IP_OFFSET_MASK 0x1FFF
#define IP_MF 0x2000

#endif /* NETTALLY_PROTO_H */
