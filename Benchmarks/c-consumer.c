/* A plain librdkafka high-level consumer, the baseline for swarm's consumer
 * speed: the same settings a swarm node uses (offsets stored after each
 * message, auto commit), no handler. Usage: c-consumer BOOTSTRAP GROUP TOPIC COUNT
 * Prints: messages seconds messages_per_second cpu_ns_per_message, timed
 * between the 10 % and the 90 % mark (the steady state, as the benchmark
 * times swarm); CPU is the whole process's, all librdkafka threads included. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double clock_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s bootstrap group topic count\n", argv[0]); return 64; }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", argv[2], err, sizeof err);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, sizeof err);
    rd_kafka_conf_set(conf, "session.timeout.ms", "6000", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) { fprintf(stderr, "%s\n", err); return 1; }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, argv[3], RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, topics);
    long want = atol(argv[4]), got = 0, from = want / 10, to = want * 9 / 10;
    double t_from = 0, t_to = 0, cpu_from = 0, cpu_to = 0;
    while (got < want) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            got++;
            if (got == from) { t_from = clock_s(CLOCK_MONOTONIC); cpu_from = clock_s(CLOCK_PROCESS_CPUTIME_ID); }
            if (got == to) { t_to = clock_s(CLOCK_MONOTONIC); cpu_to = clock_s(CLOCK_PROCESS_CPUTIME_ID); }
            rd_kafka_offset_store(m->rkt, m->partition, m->offset);
        }
        rd_kafka_message_destroy(m);
    }
    double secs = t_to - t_from;
    printf("%ld %.3f %.0f %.0f\n", to - from, secs, (to - from) / secs, (cpu_to - cpu_from) * 1e9 / (to - from));
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}
