// Package bounce reads what mail servers send back: delivery status
// notifications (RFC 3464) and abuse feedback reports (ARF, RFC 5965). A
// hard bounce or a complaint suppresses the address, so nothing is sent to
// it again, but only when the report is about a message lojal sent to
// that address: anyone can write a report, and a forged one must not be
// able to silence a customer.
package bounce

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
)

// Kind is what a report says.
type Kind string

// Kinds of report.
const (
	HardBounce Kind = "hard_bounce"
	SoftBounce Kind = "soft_bounce"
	Complaint  Kind = "complaint"
)

// Recipient is one address a report is about.
type Recipient struct {
	Address string `json:"address"`
	// Original is the Original-Recipient, when the report gives one that
	// differs (the address lojal sent to, before forwarding).
	Original   string `json:"original,omitempty"`
	Kind       Kind   `json:"kind"`
	Action     string `json:"action,omitempty"` // failed, delayed, delivered, relayed, expanded
	Status     string `json:"status,omitempty"` // 5.1.1
	Diagnostic string `json:"diagnostic,omitempty"`
}

// Report is a parsed DSN or feedback report.
type Report struct {
	Recipients []Recipient
	// MessageID and Key identify the message it is about, when the report
	// quotes its headers.
	MessageID string
	Key       string
	// ReturnPaths are addresses the report was sent to (To, Delivered-To,
	// X-Original-To, ...) or that the quoted message came from
	// (Return-Path): where a VERP token may be.
	ReturnPaths []string
}

// Limits on one report.
const (
	MaxSize = 1 << 20
	// MaxRecipients bounds the recipients one report may name. lojal sends
	// every message to one address, so a genuine report names one; a
	// report naming more than this is refused whole.
	MaxRecipients = 10
)

// ErrTooManyRecipients refuses a report naming more than MaxRecipients.
var ErrTooManyRecipients = fmt.Errorf("report names more than %d recipients", MaxRecipients)

// ErrNotAReport means the message is neither a DSN nor a feedback report
// (an out-of-office reply, say); it is ignored, not an error to retry.
var ErrNotAReport = errors.New("not a delivery status or feedback report")

// Parse reads one report message.
func Parse(r io.Reader) (Report, error) {
	var rep Report
	msg, err := mail.ReadMessage(io.LimitReader(r, MaxSize))
	if err != nil {
		return rep, fmt.Errorf("read report: %w", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" {
		return rep, ErrNotAReport
	}
	reportType := strings.ToLower(params["report-type"])
	if reportType != "delivery-status" && reportType != "feedback-report" {
		return rep, ErrNotAReport
	}
	for _, h := range []string{"To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"} {
		rep.ReturnPaths = appendAddrs(rep.ReturnPaths, msg.Header[h]...)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var complaintRcpt string
	var feedback bool
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rep, fmt.Errorf("read report part: %w", err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		body, err := io.ReadAll(io.LimitReader(p, MaxSize))
		if err != nil {
			return rep, err
		}
		switch strings.ToLower(ct) {
		case "message/delivery-status", "message/global-delivery-status":
			rcpts, err := parseDeliveryStatus(body)
			if err != nil {
				return rep, err
			}
			rep.Recipients = append(rep.Recipients, rcpts...)
			if len(rep.Recipients) > MaxRecipients {
				return rep, ErrTooManyRecipients
			}
		case "message/feedback-report":
			feedback = true
			h, err := readFields(body)
			if err != nil {
				return rep, err
			}
			complaintRcpt = addrOf(h.Get("Original-Rcpt-To"))
		case "message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/global", "message/global-headers":
			h, err := readFields(body)
			if err == nil {
				rep.MessageID = strings.Trim(h.Get("Message-Id"), "<> ")
				rep.Key = h.Get("X-Lojal-Key")
				rep.ReturnPaths = appendAddrs(rep.ReturnPaths, h["Return-Path"]...)
				if complaintRcpt == "" {
					complaintRcpt = addrOf(h.Get("To"))
				}
			}
		}
	}
	if feedback {
		if complaintRcpt == "" {
			return rep, errors.New("feedback report names no recipient")
		}
		rep.Recipients = append(rep.Recipients, Recipient{Address: complaintRcpt, Kind: Complaint, Action: "complaint"})
	}
	if len(rep.Recipients) == 0 {
		return rep, errors.New("report names no recipient")
	}
	if len(rep.Recipients) > MaxRecipients {
		return rep, ErrTooManyRecipients
	}
	return rep, nil
}

// parseDeliveryStatus reads the per-message block and the per-recipient
// blocks of a message/delivery-status part.
func parseDeliveryStatus(body []byte) ([]Recipient, error) {
	blocks := splitBlocks(body)
	if len(blocks) < 2 {
		return nil, errors.New("delivery-status part has no recipient fields")
	}
	if len(blocks) > MaxRecipients+1 {
		return nil, ErrTooManyRecipients
	}
	var out []Recipient
	for _, b := range blocks[1:] {
		h, err := readFields(b)
		if err != nil {
			return nil, fmt.Errorf("delivery-status fields: %w", err)
		}
		addr, orig := addrOf(h.Get("Final-Recipient")), addrOf(h.Get("Original-Recipient"))
		if addr == "" {
			addr = orig
		}
		if addr == "" {
			continue
		}
		if orig == addr {
			orig = ""
		}
		r := Recipient{Address: addr, Original: orig, Action: strings.ToLower(strings.TrimSpace(h.Get("Action"))),
			Status: strings.TrimSpace(h.Get("Status")), Diagnostic: strings.TrimSpace(h.Get("Diagnostic-Code"))}
		switch {
		case r.Action == "failed" && strings.HasPrefix(r.Status, "5"):
			r.Kind = HardBounce
		case r.Action == "failed" || r.Action == "delayed" || strings.HasPrefix(r.Status, "4"):
			r.Kind = SoftBounce
		default:
			continue // delivered, relayed, expanded: nothing to do
		}
		out = append(out, r)
	}
	return out, nil
}

func splitBlocks(b []byte) [][]byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	var out [][]byte
	for _, blk := range bytes.Split(b, []byte("\n\n")) {
		if len(bytes.TrimSpace(blk)) > 0 {
			out = append(out, append(bytes.TrimSpace(blk), '\n', '\n'))
		}
	}
	return out
}

func readFields(b []byte) (textproto.MIMEHeader, error) {
	if !bytes.HasSuffix(b, []byte("\n\n")) {
		b = append(bytes.TrimRight(b, "\r\n"), '\n', '\n')
	}
	return textproto.NewReader(bufio.NewReader(bytes.NewReader(b))).ReadMIMEHeader()
}

// appendAddrs adds the addresses in header values to out.
func appendAddrs(out []string, values ...string) []string {
	for _, v := range values {
		if l, err := mail.ParseAddressList(v); err == nil {
			for _, a := range l {
				out = append(out, a.Address)
			}
		} else if a := strings.Trim(strings.TrimSpace(v), "<>"); a != "" {
			out = append(out, a)
		}
		if len(out) > MaxRecipients {
			break
		}
	}
	return out
}

// addrOf extracts the address from "rfc822; user@example.com" or a header
// address.
func addrOf(v string) string {
	v = strings.TrimSpace(v)
	if typ, rest, ok := strings.Cut(v, ";"); ok && !strings.Contains(typ, "@") {
		v = strings.TrimSpace(rest)
	}
	if a, err := mail.ParseAddress(v); err == nil {
		return strings.ToLower(a.Address)
	}
	v = strings.Trim(v, "<> ")
	if strings.Count(v, "@") == 1 {
		return strings.ToLower(v)
	}
	return ""
}
