/*
 * fuzz_http.c: libFuzzer harness for http_parse() (wireguard-tools keeps
 * its harnesses beside the parsers, src/fuzz). Build: make build/fuzz_http.
 * Checks the parser's contract besides memory safety: a positive length
 * lies within the input, the path lies within the request and starts with
 * '/', the answer does not depend on bytes after the request, and a
 * complete request stays complete when more bytes follow (pipelining).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vnoded.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_req r, r2;
	char	*buf;
	int	 n, n2;

	if (size > 2 * HTTP_MAX_REQUEST)
		return 0;
	/* an exact-size copy: ASan catches any read past the end */
	buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	n = http_parse(buf, size, &r);
	if (n > 0) {
		if ((size_t)n > size || (size_t)n > HTTP_MAX_REQUEST)
			abort();
		if (r.path < buf || r.path + r.path_len > buf + n ||
		    r.path_len == 0 || r.path[0] != '/')
			abort();
		/* the same request alone parses the same */
		n2 = http_parse(buf, (size_t)n, &r2);
		if (n2 != n || r2.method != r.method || r2.path != r.path ||
		    r2.path_len != r.path_len || r2.keep_alive != r.keep_alive)
			abort();
	} else if (n < 0) {
		if (n != -400 && n != -413 && n != -414 && n != -431 &&
		    n != -501 && n != -505)
			abort();
	} else if (size >= HTTP_MAX_REQUEST) {
		abort();	/* a full buffer must get an answer */
	}
	free(buf);
	return 0;
}
