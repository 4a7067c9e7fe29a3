# destor — PostgreSQL extension (PGXS).
#
#   make              build
#   make install      install into the PostgreSQL found by pg_config
#   make demo         the README's first command: a demo on local file providers
#   make test         the README's second command: every test suite
#   make unitcheck    C unit tests only (codec, S3 signer)
#   make installcheck pg_regress suite against a running server (used by make test)
#   make bench        benchmarks (not part of make test)

EXTENSION  = destor
MODULE_big = destor
DATA       = sql/destor--0.1.0.sql

OBJS = \
	src/destor.o \
	src/codec/rs.o src/codec/crypt.o src/codec/compress.o src/codec/checksum.o src/codec/parallel.o \
	src/provider/provider.o src/provider/provider_file.o src/provider/provider_s3.o \
	src/provider/s3_sign.o src/provider/provider_check.o src/provider/provider_stats.o \
	src/cache/cache.o \
	src/object/pool.o src/object/keys.o src/object/object_layout.o \
	src/object/object_write.o src/object/object_read.o src/object/object_xact.o \
	src/object/object_repair.o \
	src/catalog/catalog.o \
	src/blob/blob.o \
	src/maintenance/orphans.o src/maintenance/repair.o src/maintenance/worker.o \
	src/tier/tier.o \
	src/table/table_options.o src/table/table_fdw.o src/table/segment_write.o \
	src/table/segment_format.o src/table/value_codec.o src/table/catalog_table.o
OBJS += src/codec/mac.o

PG_CPPFLAGS = -Isrc -Isrc/codec -Isrc/provider -Isrc/cache -Isrc/object -Isrc/catalog -Isrc/table \
              -Isrc/maintenance
PG_CFLAGS   = -Wall -Wmissing-prototypes -Werror=implicit-function-declaration
SHLIB_LINK  = -lcurl -lcrypto -lisal -lzstd -lpthread

# pg_regress: sql/*.sql against expected/*.out, on a temporary instance with
# destor preloaded and a generated master key (see test/regress/).
REGRESS      = blob_basic provider_options blob_errors blob_xact table_basic blob_lo tier_basic repair_basic move_shards blob_degraded
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=test/regress/destor.conf \
               --load-extension=destor

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: demo test unitcheck tapcheck bench

unitcheck:
	$(MAKE) -C test/unit check

# TAP suites: PostgreSQL::Test::Cluster from PGXS, real s3rver servers.
tapcheck:
	rm -rf test/tap/tmp_check
	cd test/tap && TESTDIR='$(CURDIR)/test/tap' PATH="$(bindir):$$PATH" \
	  PG_REGRESS='$(pgxsdir)/src/test/regress/pg_regress' DESTOR_TAP_LIB='$(CURDIR)/test/tap' \
	  $(PROVE) -I '$(pgxsdir)/src/test/perl' -I . $(PROVE_FLAGS) $(if $(PROVE_TESTS),$(PROVE_TESTS),t/*.pl)

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

bench:
	bash test/bench/blob_bench.sh
	bash test/bench/table_bench.sh
	bash test/bench/cache_bench.sh
	bash test/bench/tier_bench.sh
	DESTOR_PROPERTY_SECONDS=1800 DESTOR_PROPERTY_ITERATIONS=100000 DESTOR_SUITES=tap \
	  PROVE_TESTS=t/021_read_property.pl bash scripts/test.sh

# PGXS tracks no header dependencies: rebuild everything when a header changes.
$(OBJS): $(wildcard src/*/*.h)
