# Builds several configured CMake build trees (Unix Makefiles) with one pool
# of jobs, used by .ci/test:
#   make -k -j N -f .ci/trees.mk ROOT=DIR TREES="a b" [TARGET_a=target]
# Built one after another, each tree ended with its largest units compiling
# alone while a core idled; here another tree's units fill that core. Each
# tree's sub-make draws on the same N job slots (GNU make's jobserver), and
# leaves DIR/NAME.build: its build time in seconds, then "ok" or "failed".

.PHONY: all $(TREES)
all: $(TREES)

$(TREES):
	+@start=$$(date +%s); \
	if $(MAKE) --no-print-directory -C $(ROOT)/$@ $(or $(TARGET_$@),all); then verdict=ok; else verdict=failed; fi; \
	echo "$$(( $$(date +%s) - start )) $$verdict" > $(ROOT)/$@.build; \
	test $$verdict = ok
