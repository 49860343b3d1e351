# frozen_string_literal: true

module SwarmHandler
  # The two framings of swarm-handler(7), read from an IO.
  module Framing
    module_function

    # Yields each batch (an Array of Message) until the input ends.
    def batches(input, protocol, deserializer = nil, &block)
      protocol.to_s == "2" ? batches_v2(input, deserializer, &block) : batches_v1(input, deserializer, &block)
    end

    def read_exactly(input, count)
      return "".b if count.zero?

      data = input.read(count)
      raise EOFError, "the input ended inside a message" if data.nil? || data.bytesize != count

      data
    end

    # Framing 1: `batch N`, then per message a text line and the raw bytes.
    def batches_v1(input, deserializer)
      while (line = input.gets)
        fields = line.split
        raise ProtocolError, "expected 'batch <count>', got #{line[0, 80].inspect}" unless fields.size == 2 && fields[0] == "batch"

        batch = Array.new(Integer(fields[1])) do
          f = (input.gets || raise(EOFError, "the input ended inside a batch")).split
          raise ProtocolError, "expected a message line, got #{f.inspect}" unless f.size == 8 && f[0] == "message"

          key_len = Integer(f[5])
          value_len = Integer(f[6])
          headers = Array.new(Integer(f[7])) do
            h = (input.gets || raise(EOFError, "the input ended inside a header")).split
            raise ProtocolError, "expected a header line, got #{h.inspect}" unless h.size == 3 && h[0] == "header"

            name = read_exactly(input, Integer(h[1])).force_encoding(Encoding::UTF_8)
            value = read_exactly(input, Integer(h[2]))
            input.read(1)
            [name, value]
          end
          key = key_len.negative? ? nil : read_exactly(input, key_len)
          value = value_len.negative? ? nil : read_exactly(input, value_len)
          input.read(1)
          Message.new(f[1].force_encoding(Encoding::UTF_8), Integer(f[2]), Integer(f[3]), Integer(f[4]), key, value, headers, deserializer)
        end
        yield batch
      end
    end

    MESSAGE = "L<l<q<q<q<q<q<q<L<L<" # topic index, partition, offset, timestamp, key and value spans, first header, headers
    HEADER = "q<q<q<q<"               # name span, value span
    TOPIC = "q<q<"                    # name span

    # Framing 2: a 24-byte header, then fixed-size records and the bytes they point into.
    def batches_v2(input, deserializer)
      while (head = input.read(24))
        raise ProtocolError, "the input ended inside a batch header" unless head.bytesize == 24

        magic, count, header_count, topic_count, size = head.unpack("a4L<L<L<Q<")
        raise ProtocolError, "not a framing-2 batch (magic #{magic.inspect})" unless magic == "SWB2"

        data = read_exactly(input, size)
        messages_end = count * 64
        headers_end = messages_end + header_count * 32
        raise ProtocolError, "a batch of #{size} bytes cannot hold its #{count} message records" if headers_end + topic_count * 16 > size

        slice = ->(from, to) { from.negative? ? nil : data.byteslice(from, to - from) }
        topics = Array.new(topic_count) do |i|
          from, to = data.unpack(TOPIC, offset: headers_end + i * 16)
          slice.call(from, to).force_encoding(Encoding::UTF_8)
        end
        headers = Array.new(header_count) do |i|
          name_from, name_to, value_from, value_to = data.unpack(HEADER, offset: messages_end + i * 32)
          [slice.call(name_from, name_to).force_encoding(Encoding::UTF_8), slice.call(value_from, value_to)]
        end
        batch = Array.new(count) do |i|
          t, partition, offset, timestamp, key_from, key_to, value_from, value_to, first, n = data.unpack(MESSAGE, offset: i * 64)
          Message.new(topics.fetch(t), partition, offset, timestamp, slice.call(key_from, key_to), slice.call(value_from, value_to),
                      n.zero? ? [] : headers[first, n], deserializer)
        end
        yield batch
      end
    end
  end
end
