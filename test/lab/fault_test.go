package lab

import "testing"

func TestRuleset(t *testing.T) {
	const head = "table bridge cdlab\ndelete table bridge cdlab\ntable bridge cdlab {\n"
	const chain = "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n" +
		"\t\tiifname . oifname @cut drop\n"
	tests := []struct {
		name string
		f    faults
		want string
	}{
		{
			name: "none",
			f:    faults{},
			want: head + "\tset cut {\n\t\ttype ifname . ifname\n\t}\n" + chain + "\t}\n}\n",
		},
		{
			name: "partition n1 from client and n2",
			f: faults{cut: map[[2]string]bool{
				{"n1", "client"}: true, {"client", "n1"}: true, {"n1", "n2"}: true, {"n2", "n1"}: true,
			}},
			want: head + "\tset cut {\n\t\ttype ifname . ifname\n" +
				"\t\telements = { \"client\" . \"n1\", \"n1\" . \"client\", \"n1\" . \"n2\", \"n2\" . \"n1\" }\n\t}\n" +
				chain + "\t}\n}\n",
		},
		{
			name: "loss sorted by port, 100 is a plain drop",
			f:    faults{loss: map[string]int{"n2": 100, "n1": 25}},
			want: head + "\tset cut {\n\t\ttype ifname . ifname\n\t}\n" + chain +
				"\t\tiifname \"n1\" numgen random mod 100 < 25 drop\n" +
				"\t\toifname \"n1\" numgen random mod 100 < 25 drop\n" +
				"\t\tiifname \"n2\" drop\n" +
				"\t\toifname \"n2\" drop\n" +
				"\t}\n}\n",
		},
	}
	for _, tt := range tests {
		if got := tt.f.ruleset(); got != tt.want {
			t.Errorf("%s: ruleset() =\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}
