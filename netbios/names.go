package netbios

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/clusterd/clusterd/netbios/nbns"
)

// ErrName is wrapped by every error about a NetBIOS name an operator wrote.
var ErrName = errors.New("invalid NetBIOS name")

// Suffixes a bare name expands to: the workstation and file server services, the pair
// every Windows or Samba server registers.
const (
	SuffixWorkstation = 0x00
	SuffixServer      = 0x20
)

// forbidden are the characters Windows refuses in NetBIOS names (KB 909264).
const forbidden = `\/:*?"<>|`

// ParseName parses "NAME<xx>" (xx: the suffix byte as two hex digits) into a name,
// upper-cased. A bare "NAME" is refused here; ExpandNames gives it its meaning.
func ParseName(s string) (nbns.Name, error) {
	label, suffix, ok := strings.Cut(s, "<")
	if !ok {
		return nbns.Name{}, fmt.Errorf("NetBIOS name %q has no suffix: write it as NAME<xx> with the suffix byte in two hex digits, e.g. %s<20>: %w", s, strings.ToUpper(s), ErrName)
	}
	n, err := parseLabel(s, label)
	if err != nil {
		return nbns.Name{}, err
	}
	hexs, ok := strings.CutSuffix(suffix, ">")
	if !ok || len(hexs) != 2 {
		return nbns.Name{}, fmt.Errorf("NetBIOS name %q has a bad suffix %q: the suffix is exactly two hex digits in angle brackets, e.g. %s<20> or %s<1b>: %w", s, "<"+suffix, n.Label, n.Label, ErrName)
	}
	v, err := strconv.ParseUint(hexs, 16, 8)
	if err != nil {
		return nbns.Name{}, fmt.Errorf("NetBIOS name %q has a bad suffix <%s>: %q is not two hex digits (00-ff), e.g. %s<20>: %w", s, hexs, hexs, n.Label, ErrName)
	}
	n.Suffix = byte(v)
	return n, nil
}

// parseLabel checks and upper-cases the characters before the suffix.
func parseLabel(s, label string) (nbns.Name, error) {
	switch {
	case label == "":
		return nbns.Name{}, fmt.Errorf("NetBIOS name %q is empty before the suffix: give 1 to %d characters, e.g. FILESRV<20>: %w", s, nbns.MaxLabel, ErrName)
	case len(label) > nbns.MaxLabel:
		return nbns.Name{}, fmt.Errorf("NetBIOS name %q is %d characters, limit %d: shorten it, e.g. %q: %w", s, len(label), nbns.MaxLabel, label[:nbns.MaxLabel], ErrName)
	case label[0] == '.':
		return nbns.Name{}, fmt.Errorf("NetBIOS name %q starts with a period, which Windows refuses: drop the leading period: %w", s, ErrName)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if c <= ' ' || c > '~' || strings.IndexByte(forbidden, c) >= 0 {
			return nbns.Name{}, fmt.Errorf("NetBIOS name %q contains %q at position %d: use printable ASCII without spaces or any of %s: %w", s, string(rune(c)), i+1, forbidden, ErrName)
		}
	}
	return nbns.Name{Label: strings.ToUpper(label)}, nil
}

// ExpandNames parses names as written on the command line or in the API: a bare
// "NAME" stands for NAME<00> and NAME<20>, "NAME<xx>" for itself. The result is in
// order with duplicates removed. Every bad name is reported (errors.Join).
func ExpandNames(in []string) ([]nbns.Name, error) {
	var (
		out  []nbns.Name
		errs []error
		seen = map[nbns.Name]bool{}
	)
	add := func(n nbns.Name) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, s := range in {
		if strings.ContainsAny(s, "<>") {
			n, err := ParseName(s)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			add(n)
			continue
		}
		n, err := parseLabel(s, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.Suffix = SuffixWorkstation
		add(n)
		n.Suffix = SuffixServer
		add(n)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseNodeType parses a node type as written on the command line: b, p, m or h in
// either case. An empty string gives H when WINS servers are configured and B
// otherwise, the defaults of `clusterd resource add`.
func ParseNodeType(s string, haveWINS bool) (nbns.NodeType, error) {
	switch strings.ToUpper(s) {
	case "":
		if haveWINS {
			return nbns.HNode, nil
		}
		return nbns.BNode, nil
	case "B":
		return nbns.BNode, nil
	case "P":
		return nbns.PNode, nil
	case "M":
		return nbns.MNode, nil
	case "H":
		return nbns.HNode, nil
	}
	return 0, fmt.Errorf("NetBIOS node type %q is not one of b, p, m, h (b: broadcast only; h: WINS first, then broadcast; the default is h with --wins, b without): %w", s, ErrName)
}
