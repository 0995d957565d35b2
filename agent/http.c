/*
 * http.c: the health endpoint's request parser. Pure: no I/O, no
 * allocation, reads only [buf, buf+len). Strict where leniency would let a
 * request be read two ways (RFC 9112 §11: smuggling): no obsolete line
 * folding, no whitespace before a header's colon, no request bodies, one
 * Content-Length at most. Bare LF is accepted as a line end (RFC 9112 §2.2).
 * agent/fuzz_http.c feeds it random bytes.
 */
#include <string.h>
#include <strings.h>

#include "vnoded.h"

/* RFC 9110 §5.6.2 token characters. */
static bool
is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* End of the line starting at p (its LF), or NULL if none before end. */
static const char *
line_end(const char *p, const char *end)
{
	return memchr(p, '\n', (size_t)(end - p));
}

/* Trims the optional CR before the LF at e; returns the content's end. */
static const char *
strip_cr(const char *p, const char *e)
{
	return e > p && e[-1] == '\r' ? e - 1 : e;
}

static bool
token_eq(const char *p, size_t n, const char *tok)
{
	return strlen(tok) == n && strncasecmp(p, tok, n) == 0;
}

/* Connection: a comma-separated token list (RFC 9110 §7.6.1). */
static void
parse_connection(const char *v, const char *ve, bool *close, bool *keep)
{
	while (v < ve) {
		const char *t;
		while (v < ve && (*v == ' ' || *v == '\t' || *v == ','))
			v++;
		t = v;
		while (v < ve && *v != ',' && *v != ' ' && *v != '\t')
			v++;
		if (token_eq(t, (size_t)(v - t), "close"))
			*close = true;
		else if (token_eq(t, (size_t)(v - t), "keep-alive"))
			*keep = true;
	}
}

int
http_parse(const char *buf, size_t len, struct http_req *r)
{
	const char *p = buf, *end = buf + len, *le, *ce, *sp1, *sp2, *q;
	bool	 close = false, keep = false, have_host = false, have_cl = false;
	int	 minor;

	memset(r, 0, sizeof(*r));
	/* RFC 9112 §2.2: ignore empty lines before the request line. */
	while (p < end && (*p == '\r' || *p == '\n')) {
		if (*p == '\r' && (p + 1 < end && p[1] != '\n'))
			return -400;
		p++;
		if (p - buf > 8)
			return -400;
	}
	if ((le = line_end(p, end)) == NULL) {
		if ((size_t)(end - p) > HTTP_MAX_LINE)
			return -414;
		return len >= HTTP_MAX_REQUEST ? -431 : 0;
	}
	if ((size_t)(le - p) > HTTP_MAX_LINE)
		return -414;
	ce = strip_cr(p, le);

	/* method SP request-target SP HTTP-version */
	for (sp1 = p; sp1 < ce && is_tchar((unsigned char)*sp1); sp1++)
		;
	if (sp1 == p || sp1 == ce || *sp1 != ' ')
		return -400;
	/* methods are case-sensitive (RFC 9110 §9.1) */
	if (sp1 - p == 3 && !memcmp(p, "GET", 3))
		r->method = HTTP_GET;
	else if (sp1 - p == 4 && !memcmp(p, "HEAD", 4))
		r->method = HTTP_HEAD;
	else
		r->method = HTTP_OTHER;
	for (sp2 = sp1 + 1; sp2 < ce && *sp2 > ' ' && *sp2 < 0x7f; sp2++)
		;
	if (sp2 == sp1 + 1 || sp2 == ce || *sp2 != ' ')
		return -400;
	if (sp1[1] != '/')
		return -400;	/* origin-form only: no proxy forms, no '*' */
	r->path = sp1 + 1;
	q = memchr(r->path, '?', (size_t)(sp2 - r->path));
	r->path_len = (size_t)((q ? q : sp2) - r->path);
	if (ce - (sp2 + 1) != 8 || memcmp(sp2 + 1, "HTTP/", 5) ||
	    sp2[6] < '0' || sp2[6] > '9' || sp2[7] != '.' ||
	    sp2[8] < '0' || sp2[8] > '9')
		return -400;
	if (sp2[6] != '1')
		return -505;
	minor = sp2[8] - '0';

	/* header fields, up to the empty line */
	p = le + 1;
	for (;;) {
		const char *colon, *v, *ve;

		if ((le = line_end(p, end)) == NULL)
			return len >= HTTP_MAX_REQUEST ? -431 : 0;
		if ((size_t)(le + 1 - buf) > HTTP_MAX_REQUEST)
			return -431;
		ce = strip_cr(p, le);
		if (ce == p)
			break;
		if (*p == ' ' || *p == '\t')
			return -400;	/* obs-fold */
		for (colon = p; colon < ce && is_tchar((unsigned char)*colon); colon++)
			;
		if (colon == p || colon == ce || *colon != ':')
			return -400;
		for (v = colon + 1; v < ce && (*v == ' ' || *v == '\t'); v++)
			;
		for (ve = ce; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
			;
		for (q = v; q < ve; q++)
			if (((unsigned char)*q < ' ' && *q != '\t') || *q == 0x7f)
				return -400;
		if (token_eq(p, (size_t)(colon - p), "Host")) {
			if (have_host)
				return -400;
			have_host = true;
		} else if (token_eq(p, (size_t)(colon - p), "Content-Length")) {
			/* We take no bodies: only an explicit zero passes. */
			if (have_cl)
				return -400;
			have_cl = true;
			if (v == ve)
				return -400;
			for (q = v; q < ve; q++)
				if (*q < '0' || *q > '9')
					return -400;
			for (q = v; q < ve && *q == '0'; q++)
				;
			if (q != ve)
				return -413;
		} else if (token_eq(p, (size_t)(colon - p), "Transfer-Encoding")) {
			return -501;
		} else if (token_eq(p, (size_t)(colon - p), "Connection")) {
			parse_connection(v, ve, &close, &keep);
		}
		p = le + 1;
	}
	/* RFC 9112 §3.2: a 1.1 request without Host gets 400. */
	if (minor >= 1 && !have_host)
		return -400;
	r->keep_alive = close ? false : minor >= 1 ? true : keep;
	return (int)(le + 1 - buf);
}
