# frozen_string_literal: true

module SwarmHandler
  VERSION = "0.3.0"
end
