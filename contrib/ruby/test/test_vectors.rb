# frozen_string_literal: true

# The Ruby kit against swarm-handler(7)'s shared vectors (contrib/vectors): it
# reads every vector's bytes, in both framings, as the messages the vector
# describes, and answers them with exactly the bytes the vector expects.
# Run: ruby -Ilib test/test_vectors.rb (from contrib/ruby)

require "base64"
require "json"
require "stringio"
require "minitest/autorun"
require_relative "../lib/swarm_handler"

VECTORS = File.expand_path("../../vectors", __dir__)

def field(f)
  return nil if f.nil?
  return f["text"].b if f["text"]
  return Base64.strict_decode64(f["base64"]) if f["base64"]

  unit = f["pattern"].b
  (unit * (f["length"] / unit.bytesize + 1))[0, f["length"]]
end

def vectors
  JSON.parse(File.read(File.join(VECTORS, "vectors.json")))["vectors"]
end

def frame(name, framing)
  File.binread(File.join(VECTORS, "#{name}.#{framing}"))
end

# A consumer that answers each message with the vector's result for it.
class VectorConsumer < SwarmHandler::Consumer
  deserializer ->(message) { message.raw_payload }
  class << self
    attr_accessor :plan
  end

  def consume(messages)
    results = self.class.plan.shift
    messages.zip(results).each do |message, result|
      case result
      when "ok" then mark_as_consumed(message)
      when "defer" then mark_as_deferred(message)
      else mark_as_failed(message, result.delete_prefix("fail:"))
      end
    end
  end
end

class VectorTest < Minitest::Test
  def answered(framing, consumer, input)
    out = StringIO.new("".b)
    SwarmHandler.run(consumer, input: StringIO.new(input), output: out, protocol: framing)
    out.string
  end

  def test_every_vector_reads_as_its_messages_in_both_framings
    vectors.each do |v|
      %w[1 2].each do |framing|
        got = []
        SwarmHandler::Framing.batches(StringIO.new(frame(v["name"], framing)), framing) { |b| got << b }
        assert_equal v["batches"].size, got.size, "#{v["name"]} #{framing}"
        got.zip(v["batches"]).each do |batch, want|
          assert_equal want.size, batch.size
          batch.zip(want).each do |m, w|
            where = "#{v["name"]}, framing #{framing}, offset #{w["offset"]}"
            assert_equal [w["topic"], w["partition"], w["offset"], w["timestamp"]], [m.topic, m.partition, m.offset, m.timestamp_ms], where
            # assert_equal refuses nil as the expected value: compared as one pair.
            assert_equal [field(w["key"]), field(w["value"])], [m.raw_key, m.raw_payload], where
            assert_equal w["value"].nil?, m.tombstone?, where
            assert_equal(w["headers"].map { |n, h| [n, field(h)] }, m.headers_list, where)
          end
        end
      end
    end
  end

  def test_every_vector_is_answered_with_its_bytes
    vectors.each do |v|
      %w[1 2].each do |framing|
        VectorConsumer.plan = v["batches"].map { |b| b.map { |m| m["result"] } }
        assert_equal v["answers"], answered(framing, VectorConsumer, frame(v["name"], framing)), "#{v["name"]} #{framing}"
      end
    end
  end

  def test_a_raising_consume_fails_every_message_of_its_batch_with_the_exception
    consumer = Class.new(SwarmHandler::Consumer) do
      def consume(_messages)
        raise ArgumentError, "downstream\nsaid no"
      end
    end
    assert_equal "fail ArgumentError: downstream said no\n" * 3, answered("2", consumer, frame("simple", "2"))
  end

  def test_the_readers_a_karafka_consumer_uses
    seen = []
    consumer = Class.new(SwarmHandler::Consumer) do
      define_method(:consume) { |messages| seen.concat(messages.to_a) }
    end
    answered("1", consumer, frame("nulls", "1"))
    no_key, empty_key, tombstone, = seen
    assert_nil no_key.key
    assert_nil no_key.timestamp, "no timestamp from the broker"
    assert_equal "", empty_key.key
    assert_equal Time.at(0, 5, :millisecond), empty_key.timestamp
    assert tombstone.tombstone?
    assert_nil tombstone.payload
    json = Class.new(SwarmHandler::Consumer)
    message = SwarmHandler::Message.new("t", 0, 0, 0, nil, '{"total": 3}'.b, [["a", "1".b], ["a", "2".b]], json.deserializer)
    assert_equal({ "total" => 3 }, message.payload, "JSON unless the consumer says otherwise")
    assert_equal({ "a" => "2" }, message.headers)
  end

  def test_a_foreign_framing_is_a_protocol_error
    assert_raises(SwarmHandler::ProtocolError) do
      SwarmHandler::Framing.batches(StringIO.new(frame("simple", "1")), "2") { nil }
    end
  end
end
