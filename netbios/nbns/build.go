package nbns

import "encoding/binary"

// Builders for the messages of RFC 1002 section 4.2. Header flags follow what Samba
// 4.17 sends (checked byte for byte against ../../shared/vectors), which differs from
// the RFC in places: responses to queries and registrations carry RD and RA, a WACK
// is typed NULL, and the answer to a refresh or multi-homed registration is an
// OpRegister response.

// NewNameQuery asks for the addresses of n. Use FlagRD when asking a WINS server,
// FlagB (and FlagRD) for a broadcast query, neither for a direct query to a node
// (the WINS challenge).
func NewNameQuery(id uint16, n Name, flags Flags) *Message {
	return &Message{
		Header:    Header{ID: id, Opcode: OpQuery, Flags: flags},
		Questions: []Question{{Name: n, Type: TypeNB, Class: ClassIN}},
	}
}

// NewNodeStatusRequest asks a node for its name table (nmblookup -A).
func NewNodeStatusRequest(id uint16) *Message {
	return &Message{
		Header:    Header{ID: id, Opcode: OpQuery},
		Questions: []Question{{Name: Wildcard, Type: TypeNBSTAT, Class: ClassIN}},
	}
}

// request builds the question-plus-additional-record shape shared by registration,
// refresh and release.
func request(id uint16, op Opcode, flags Flags, n Name, ttl uint32, e NBEntry) *Message {
	return &Message{
		Header:      Header{ID: id, Opcode: op, Flags: flags},
		Questions:   []Question{{Name: n, Type: TypeNB, Class: ClassIN}},
		Additionals: []Resource{{Name: n, Type: TypeNB, Class: ClassIN, TTL: ttl, NB: []NBEntry{e}}},
	}
}

// NewRegistration registers n for e.Addr (opcode 5, RD). With broadcast set it is a
// B-node registration sent to the subnet (B flag; Samba sends TTL 0 there).
func NewRegistration(id uint16, n Name, ttl uint32, e NBEntry, broadcast bool) *Message {
	f := FlagRD
	if broadcast {
		f |= FlagB
	}
	return request(id, OpRegister, f, n, ttl, e)
}

// NewMultiHomedRegistration registers e.Addr as one more address of the unique name
// n (opcode 0xF, RD), as Samba does from every address it serves.
func NewMultiHomedRegistration(id uint16, n Name, ttl uint32, e NBEntry) *Message {
	return request(id, OpMultiHomedRegister, FlagRD, n, ttl, e)
}

// NewRefresh refreshes a registration (opcode 8, no flags). The server answers with
// an OpRegister response carrying the granted TTL.
func NewRefresh(id uint16, n Name, ttl uint32, e NBEntry) *Message {
	return request(id, OpRefresh, 0, n, ttl, e)
}

// NewRelease releases n for e.Addr (opcode 6). RFC 1002 asks for TTL 0; Samba sends
// the registration TTL and ignores the field.
func NewRelease(id uint16, n Name, e NBEntry, broadcast bool) *Message {
	var f Flags
	if broadcast {
		f = FlagB
	}
	return request(id, OpRelease, f, n, 0, e)
}

// question returns the first question of req or a zero one.
func question(req *Message) Question {
	if len(req.Questions) > 0 {
		return req.Questions[0]
	}
	return Question{Type: TypeNB, Class: ClassIN}
}

// NewQueryResponse answers a name query positively with the given addresses.
func NewQueryResponse(req *Message, ttl uint32, entries ...NBEntry) *Message {
	q := question(req)
	return &Message{
		Header:  Header{ID: req.ID, Response: true, Opcode: OpQuery, Flags: FlagAA | FlagRD | FlagRA},
		Answers: []Resource{{Name: q.Name, Type: TypeNB, Class: ClassIN, TTL: ttl, NB: entries}},
	}
}

// NewNegativeQueryResponse answers a name query with rcode (normally RCodeName).
func NewNegativeQueryResponse(req *Message, rcode RCode) *Message {
	q := question(req)
	return &Message{
		Header:  Header{ID: req.ID, Response: true, Opcode: OpQuery, Flags: FlagAA | FlagRD | FlagRA, RCode: rcode},
		Answers: []Resource{{Name: q.Name, Type: TypeNULL, Class: ClassIN}},
	}
}

// NewNodeStatusResponse answers a node status request.
func NewNodeStatusResponse(req *Message, s *NodeStatus) *Message {
	q := question(req)
	return &Message{
		Header:  Header{ID: req.ID, Response: true, Opcode: OpQuery, Flags: FlagAA},
		Answers: []Resource{{Name: q.Name, Type: TypeNBSTAT, Class: ClassIN, Status: s}},
	}
}

// requestRecord returns the name and NB entries a registration, refresh or release
// carries in its additional record (or its question name and no entries).
func requestRecord(req *Message) (Name, []NBEntry) {
	if len(req.Additionals) > 0 {
		return req.Additionals[0].Name, req.Additionals[0].NB
	}
	return question(req).Name, nil
}

// NewRegistrationResponse answers a registration, multi-homed registration or refresh
// with rcode (RCodeOK, or RCodeActive/RCodeConflict/RCodeRefused...) and the granted
// TTL; the answer repeats the request's record. The opcode is always OpRegister.
func NewRegistrationResponse(req *Message, rcode RCode, ttl uint32) *Message {
	n, nb := requestRecord(req)
	return &Message{
		Header:  Header{ID: req.ID, Response: true, Opcode: OpRegister, Flags: FlagAA | FlagRD | FlagRA, RCode: rcode},
		Answers: []Resource{{Name: n, Type: TypeNB, Class: ClassIN, TTL: ttl, NB: nb}},
	}
}

// NewReleaseResponse answers a release; RCodeName means the name was not registered.
func NewReleaseResponse(req *Message, rcode RCode) *Message {
	n, nb := requestRecord(req)
	return &Message{
		Header:  Header{ID: req.ID, Response: true, Opcode: OpRelease, Flags: FlagAA, RCode: rcode},
		Answers: []Resource{{Name: n, Type: TypeNB, Class: ClassIN, NB: nb}},
	}
}

// NewWACK tells the sender of req to wait up to ttl seconds for the real answer. Its
// data is the request's opcode and flags word.
func NewWACK(req *Message, ttl uint32) *Message {
	n, _ := requestRecord(req)
	w := req.Header
	w.Response, w.RCode = false, 0
	return &Message{
		Header:  Header{ID: req.ID, Response: true, Opcode: OpWACK, Flags: FlagAA},
		Answers: []Resource{{Name: n, Type: TypeNULL, Class: ClassIN, TTL: ttl, Data: binary.BigEndian.AppendUint16(nil, w.word())}},
	}
}

// NewConflictDemand tells the node holding e.Addr that its name n is in conflict
// (RFC 1002 4.2.8: a registration response with CFT_ERR, sent unsolicited).
func NewConflictDemand(id uint16, n Name, e NBEntry) *Message {
	return &Message{
		Header:  Header{ID: id, Response: true, Opcode: OpRegister, Flags: FlagAA | FlagRD | FlagRA, RCode: RCodeConflict},
		Answers: []Resource{{Name: n, Type: TypeNB, Class: ClassIN, NB: []NBEntry{e}}},
	}
}
