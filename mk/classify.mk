# classify: the cgroup/sock_create program's build inputs, its test helper
# and its benchmark.
#
# vmlinux.h comes from the build host's kernel BTF (CO-RE: the object then
# loads on any kernel with BTF); bpftool's C dump is the libbpf-bootstrap way.
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux

$(B)/vmlinux.h:
	@mkdir -p $(@D)
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@

$(B)/classify.bpf.o: $(B)/vmlinux.h bpf/classify.h

# Test helper: opens sockets of every kind on command (tests/classify).
$(B)/sockprobe: tests/classify/sockprobe.c
	@mkdir -p $(@D)
	$(call msg,CC,$<)
	$(Q)$(CC) -O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -o $@ $< -lpthread

test: $(B)/sockprobe

# the socket-creation benchmark (tests/bench/bench_classify.sh) uses it
bench: $(B)/sockprobe

# Chained pattern rules would make these intermediate and delete them.
.SECONDARY: $(B)/vmlinux.h $(BPF_SRCS:bpf/%.bpf.c=$(B)/%.bpf.o) $(BPF_SKELS)
