# health.c, exitip.c, counters.c, probe.c: libcurl (exit addresses) and
# jansson (tailscaled's and Gluetun's JSON) join the agent's libraries.
HEALTH_PKGS := libcurl jansson
CFLAGS  += $(shell pkg-config --cflags $(HEALTH_PKGS))
LDLIBS  += $(shell pkg-config --libs $(HEALTH_PKGS))

# Test-only binaries, never part of vnoded:
#   build/health-driver  the endpoint and exit-address checks on a libev
#                        loop, vstate filled from a file (tests/health)
#   build/fuzz_http      libFuzzer harness of the request parser
HEALTH_DRIVER_OBJS := $(B)/tests/health/driver.o $(B)/agent/health.o \
	$(B)/agent/exitip.o $(B)/agent/counters.o $(B)/agent/http.o \
	$(B)/agent/config.o $(B)/agent/log.o

$(B)/health-driver: $(HEALTH_DRIVER_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/health/%.o: tests/health/%.c
	@mkdir -p $(@D)
	$(call msg,CC,$<)
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/fuzz_http: agent/fuzz_http.c agent/http.c agent/vnoded.h
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) -g -O1 -std=gnu11 -D_GNU_SOURCE -Iagent \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-o $@ agent/fuzz_http.c agent/http.c

health-test-bins: $(B)/vnoded $(B)/health-driver $(B)/fuzz_http
.PHONY: health-test-bins
-include $(B)/tests/health/driver.d

# The health suite against an ASan/UBSan build of the driver (STYLE.md:
# a sanitizer run of the tests). The lab test runs the normal vnoded.
HEALTH_SAN := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
health-asan:
	CFLAGS="$(HEALTH_SAN)" LDFLAGS="-fsanitize=address,undefined" $(MAKE) B=$(B)/asan $(B)/asan/health-driver
	DRIVER=$(CURDIR)/$(B)/asan/health-driver ASAN_OPTIONS=detect_leaks=1 bash tests/run.sh health
.PHONY: health-asan
