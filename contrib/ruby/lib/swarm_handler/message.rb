# frozen_string_literal: true

module SwarmHandler
  # One Kafka message, with the readers a Karafka consumer uses.
  class Message
    # The topic's name, the partition and the offset.
    attr_reader :topic, :partition, :offset
    # The value as bytes (a binary String), nil for a tombstone.
    attr_reader :raw_payload
    # The key as bytes (a binary String), nil without a key.
    attr_reader :raw_key
    # Every header as [name, value] pairs, in order, repeated names kept.
    attr_reader :headers_list
    # Milliseconds since the epoch; -1 when the broker gave none.
    attr_reader :timestamp_ms

    def initialize(topic, partition, offset, timestamp_ms, key, value, headers, deserializer = nil)
      @topic = topic
      @partition = partition
      @offset = offset
      @timestamp_ms = timestamp_ms
      @raw_key = key
      @raw_payload = value
      @headers_list = headers
      @deserializer = deserializer
    end

    # The key as text (UTF-8), nil without a key.
    def key
      @raw_key&.dup&.force_encoding(Encoding::UTF_8)
    end

    # The headers as a Hash of name to value (the last one of a repeated name).
    def headers
      @headers ||= @headers_list.to_h
    end

    # The message's time, nil when the broker gave none.
    def timestamp
      @timestamp_ms.negative? ? nil : Time.at(@timestamp_ms / 1000, @timestamp_ms % 1000, :millisecond)
    end

    # A tombstone: a null value (a deletion on a compacted topic).
    def tombstone?
      @raw_payload.nil?
    end

    # The value through the consumer's deserializer (JSON unless it says
    # otherwise), once; nil for a tombstone.
    def payload
      return nil if tombstone?
      return @payload if defined?(@payload)

      @payload = @deserializer ? @deserializer.call(self) : @raw_payload
    end

    def inspect
      "#<SwarmHandler::Message #{@topic}/#{@partition}@#{@offset} key=#{@raw_key.inspect}>"
    end
  end
end
