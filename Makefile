# vNode: one Makefile, quiet unless V=1.
#   make            build/vnoded (and build/vnode once the CLI exists)
#   make deps       install build and test dependencies (Debian packages)
#   make test       every test (the README's test command)
#   make demo       the self-contained lab demo
#   make bench      benchmarks beside the seed's recipe
#   make e2e        container end-to-end test alone
.DELETE_ON_ERROR:
.SUFFIXES:

B       := build
CC      ?= cc
CLANG   ?= clang
BPFTOOL ?= bpftool
PKGS    := libnl-3.0 libnl-route-3.0 libmnl libnftnl libnetfilter_conntrack libbpf
# libnftables is dlopen'ed by agent/nft.c (loaded per command, not resident)
CFLAGS_NFT := $(shell pkg-config --cflags libnftables)

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-6s %s\n' $(1) $(2)
endif

WARN    := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter -Wno-missing-field-initializers
ifeq ($(CI),true)
WARN    += -Werror
endif
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -D_GNU_SOURCE $(WARN) -I$(B) -Iagent \
           $(shell pkg-config --cflags $(PKGS)) $(CFLAGS_NFT) -MMD -MP
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lev -ldl

# vnoded: every agent/*.c that belongs to the daemon (cli_*.c is the host CLI).
VNODED_SRCS := $(filter-out agent/cli%.c agent/fuzz_%.c,$(wildcard agent/*.c))
VNODED_OBJS := $(VNODED_SRCS:agent/%.c=$(B)/agent/%.o)
BPF_SRCS    := $(wildcard bpf/*.bpf.c)
BPF_SKELS   := $(BPF_SRCS:bpf/%.bpf.c=$(B)/%.skel.h)

all: $(B)/vnoded

$(B)/vnoded: $(VNODED_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Objects wait for the skeletons, which the loader includes.
$(B)/agent/%.o: agent/%.c | $(BPF_SKELS)
	@mkdir -p $(@D)
	$(call msg,CC,$<)
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

# eBPF: X.bpf.c -> X.bpf.o (clang, bpf target) -> X.skel.h (bpftool).
$(B)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h)
	@mkdir -p $(@D)
	$(call msg,BPF,$<)
	$(Q)$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_x86 -Ibpf -I$(B) -c -o $@ $<

$(B)/%.skel.h: $(B)/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

deps:
	bash scripts/deps.sh

$(B)/nlbench: tests/bench/nlbench.c
	@mkdir -p $(@D)
	$(call msg,CC,$<)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

demo: all
	bash tests/lab/demo.sh

bench: all $(B)/nlbench
	bash tests/bench/run.sh

test: all
	bash tests/run.sh

clean:
	rm -rf $(B)

.PHONY: all deps test clean demo bench e2e

# Fragments for parts that grow on their own (tests, images, bench).
-include mk/*.mk
-include $(VNODED_OBJS:.o=.d)
