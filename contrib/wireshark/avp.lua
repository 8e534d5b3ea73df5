-- Wireshark dissector for the AVP resource-usage protocol (docs/PROTOCOL.md).
--
--   tshark -X lua_script:contrib/wireshark/avp.lua -r capture.pcap
--   wireshark -X lua_script:contrib/wireshark/avp.lua capture.pcap
--
-- or copy this file into Wireshark's personal plugins folder (Help > About > Folders).
--
-- Binary frames on TCP (reassembled on the 2-byte length) and UDP (one frame per datagram),
-- the JSON text form on TCP. Default ports: 7700 tcp+udp and 7701 tcp (binary), 7703 tcp
-- (JSON); other ports through Decode As (AVP, AVP_UDP, AVP_JSON). Broken framing is marked
-- as malformed, a message the receiver answers with 400 as a warning, an unknown type (501) or
-- attribute (skipped) as a note.
--
-- The tables below (and JSON_FIELDS further down) are the protocol's:
-- crates/proto/tests/wireshark_tables.rs compares them with the avp-proto crate, so a change
-- made to only one of the two fails the tests. crates/proto/tests/wireshark_decode.rs runs the
-- dissector under tshark on the protocol's fixtures.

local MESSAGE_TYPES = {
    [0] = { name = "PAUSE", json = "pause", allowed = { 3, 6, 10 }, required = { 3 } },
    [1] = { name = "RESUME", json = "resume", allowed = { 6, 10 }, required = {} },
    [2] = { name = "COMMAND_RESPONSE", json = "cmd-ack", allowed = { 4, 5, 6, 8 }, required = { 4 } },
    [3] = { name = "STAT_REPORT", json = "report", allowed = { 1, 2, 6, 7, 8, 9, 11, 12, 13, 14 }, required = { 1, 2 } },
    [4] = { name = "STAT_REPORT_ACK", json = "report-ack", allowed = { 6 }, required = {} },
}

-- An integer attribute without `max` takes any 64-bit value; printable text refuses control
-- characters; octets are raw bytes of exactly `len`.
local ATTRIBUTES = {
    [1] = { name = "CPU_USAGE", field = "cpu", kind = "uint", min = 0, max = 100 },
    [2] = { name = "MEM_USAGE", field = "mem", kind = "uint", min = 0, max = 100 },
    [3] = { name = "DURATION", field = "duration", kind = "uint", min = 1, max = 604800 },
    [4] = { name = "RESULT_CODE", field = "result_code", kind = "uint", min = 100, max = 999 },
    [5] = { name = "INFO", field = "info", kind = "text", min_len = 0 },
    [6] = { name = "SEQUENCE", field = "sequence", kind = "uint", min = 0 },
    [7] = { name = "TIMESTAMP", field = "timestamp", kind = "uint", min = 0 },
    [8] = { name = "NODE_ID", field = "node_id", kind = "text", min_len = 1, printable = true },
    [9] = { name = "INSTANCE", field = "instance", kind = "uint", min = 0 },
    [10] = { name = "TARGET", field = "target", kind = "text", min_len = 1, printable = true },
    [11] = { name = "STATE", field = "state", kind = "uint", min = 0, max = 4 },
    [12] = { name = "PAUSED_UNTIL", field = "paused_until", kind = "uint", min = 0 },
    [13] = { name = "RECEIVED", field = "received", kind = "uint", min = 0 },
    [14] = { name = "AUTHENTICATOR", field = "authenticator", kind = "octets", len = 32 },
}

local RESULT_CODES = {
    [200] = "OK",
    [400] = "BAD_REQUEST",
    [401] = "UNAUTHORIZED",
    [404] = "NOT_FOUND",
    [501] = "UNSUPPORTED_TYPE",
    [503] = "OVERLOADED",
    [504] = "TIMED_OUT",
}

-- Wire constants (docs/PROTOCOL.md sections 1, 2 and 7).
local HEADER_LEN = 3
local AVP_HEADER_LEN = 2
local MAX_UINT_LEN = 8
local MAX_TEXT_LEN = 255
local MAX_JSON_HEADER_DIGITS = 5
local MAX_FRAME_LEN = 65535

local avp = Proto("avp", "AVP resource-usage protocol")
local avp_udp = Proto("avp_udp", "AVP resource-usage protocol over UDP")
local avp_json = Proto("avp_json", "AVP resource-usage protocol, JSON text form")

local function names_of(tbl)
    local names = {}
    for code, entry in pairs(tbl) do
        names[code] = entry.name
    end
    return names
end

local f = {
    length = ProtoField.uint16("avp.length", "Length", base.DEC),
    type = ProtoField.uint8("avp.type", "Message type", base.DEC, names_of(MESSAGE_TYPES)),
    avp = ProtoField.bytes("avp.avp", "AVP"),
    attr = ProtoField.uint8("avp.attr", "Attribute", base.DEC, names_of(ATTRIBUTES)),
    avp_length = ProtoField.uint8("avp.avp_length", "Value length", base.DEC),
    value = ProtoField.bytes("avp.value", "Value"),
    json_length = ProtoField.uint16("avp.json_length", "Body length", base.DEC),
    json_type = ProtoField.string("avp.json_type", "JSON type"),
}
for _, attr in pairs(ATTRIBUTES) do
    local abbr = "avp." .. attr.field
    if attr.kind == "text" then
        attr.proto_field = ProtoField.string(abbr, attr.name)
    elseif attr.kind == "octets" then
        attr.proto_field = ProtoField.bytes(abbr, attr.name)
    elseif attr.name == "RESULT_CODE" then
        attr.proto_field = ProtoField.uint32(abbr, attr.name, base.DEC, RESULT_CODES)
        attr.has_result_codes = true
    else
        attr.proto_field = ProtoField.uint64(abbr, attr.name, base.DEC)
    end
    f[attr.field] = attr.proto_field
end
avp.fields = f

local e = {
    malformed = ProtoExpert.new("avp.malformed", "Malformed frame", expert.group.MALFORMED, expert.severity.ERROR),
    invalid = ProtoExpert.new("avp.invalid", "Invalid message (answered 400)", expert.group.PROTOCOL, expert.severity.WARN),
    unknown_type = ProtoExpert.new("avp.unknown_type", "Unknown message type (answered 501)", expert.group.UNDECODED, expert.severity.NOTE),
    unknown_attr = ProtoExpert.new("avp.unknown_attr", "Unknown attribute (skipped)", expert.group.UNDECODED, expert.severity.NOTE),
}
avp.experts = e

-- True when `s` is valid UTF-8 (Lua 5.2 has no utf8 library).
local function is_utf8(s)
    local i, n = 1, #s
    while i <= n do
        local c = s:byte(i)
        local extra, min
        if c < 0x80 then
            extra, min = 0, 0
        elseif c >= 0xC2 and c <= 0xDF then
            extra, min = 1, 0x80
        elseif c >= 0xE0 and c <= 0xEF then
            extra, min = 2, 0x800
        elseif c >= 0xF0 and c <= 0xF4 then
            extra, min = 3, 0x10000
        else
            return false
        end
        if i + extra > n then
            return false
        end
        local cp = extra == 0 and c or c % (2 ^ (6 - extra))
        for k = 1, extra do
            local b = s:byte(i + k)
            if b < 0x80 or b > 0xBF then
                return false
            end
            cp = cp * 64 + b % 64
        end
        if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then
            return false
        end
        i = i + extra + 1
    end
    return true
end

local function contains(list, v)
    for _, x in ipairs(list) do
        if x == v then
            return true
        end
    end
    return false
end

-- Adds the integer value of `attr` in `range` (nil when empty; `avp_range` is the whole AVP)
-- to `tree`; returns its display text, or nil and the reason when it is invalid.
local function add_uint(tree, attr, range, avp_range, len)
    if len == 0 or len > MAX_UINT_LEN then
        local reason = len == 0 and attr.name .. " has an empty value"
            or attr.name .. " is " .. len .. " bytes long; integers are 1 to 8 bytes"
        tree:add(f.value, range or avp_range):add_proto_expert_info(e.invalid, reason)
        return nil, reason
    end
    local value = range:uint64()
    local item
    if attr.has_result_codes then
        if value <= UInt64(0xFFFFFFFF) then
            item = tree:add(attr.proto_field, range, value:tonumber())
        else
            item = tree:add(f.value, range)
        end
    else
        item = tree:add(attr.proto_field, range, value)
    end
    if value < UInt64(attr.min) or (attr.max ~= nil and value > UInt64(attr.max)) then
        local bound = attr.max ~= nil and tostring(attr.max) or tostring(UInt64.max())
        local reason = attr.name .. " " .. tostring(value) .. " is out of range " .. attr.min .. "..=" .. bound
        item:add_proto_expert_info(e.invalid, reason)
        return nil, reason
    end
    return tostring(value)
end

-- Adds the text value of `attr` in `range` (nil when empty; `avp_range` is the whole AVP) to
-- `tree`; returns it, or nil and the reason when it is invalid.
local function add_text(tree, attr, range, avp_range, len)
    local text = range and range:raw() or ""
    if not is_utf8(text) then
        local reason = attr.name .. " is not valid UTF-8"
        tree:add(f.value, range):add_proto_expert_info(e.invalid, reason)
        return nil, reason
    end
    local item = tree:add(attr.proto_field, range or avp_range, text)
    if len < attr.min_len then
        local reason = attr.name .. " is " .. len .. " bytes long; allowed " .. attr.min_len .. "..=" .. MAX_TEXT_LEN
        item:add_proto_expert_info(e.invalid, reason)
        return nil, reason
    end
    -- C0 controls and DEL, or C1 controls (U+0080..U+009F, \xC2\x80..\xC2\x9F in UTF-8).
    if attr.printable and (text:find("[%z\1-\31\127]") or text:find("\194[\128-\159]")) then
        local reason = attr.name .. " holds a control character"
        item:add_proto_expert_info(e.invalid, reason)
        return nil, reason
    end
    return text
end

-- Adds the raw value of `attr` in `range` to `tree`; returns its hexadecimal text, or nil and
-- the reason when its length is wrong.
local function add_octets(tree, attr, range, avp_range, len)
    local item = tree:add(attr.proto_field, range or avp_range)
    if len ~= attr.len then
        local reason = attr.name .. " is " .. len .. " bytes long; it must be " .. attr.len
        item:add_proto_expert_info(e.invalid, reason)
        return nil, reason
    end
    return tostring(range:bytes())
end

-- Dissects one binary frame (`tvb` holds exactly its `length` bytes); returns the Info text.
local function dissect_frame(tvb, tree)
    local subtree = tree:add(avp, tvb())
    local length = tvb(0, 2):uint()
    subtree:add(f.length, tvb(0, 2))
    local code = tvb(2, 1):uint()
    subtree:add(f.type, tvb(2, 1))
    local msg = MESSAGE_TYPES[code]
    local summary = msg and msg.name or ("unknown type " .. code)
    subtree:append_text(", " .. summary)
    if not msg then
        subtree:add_proto_expert_info(e.unknown_type, "unsupported message type " .. code)
    end
    local seen, values = {}, {}
    -- The first problem in the receiver's order (docs/PROTOCOL.md section 2), for Info.
    local problem
    local function invalid(item, reason)
        item:add_proto_expert_info(e.invalid, reason)
        problem = problem or reason
    end
    local offset = HEADER_LEN
    while offset < length do
        if offset + AVP_HEADER_LEN > length or offset + AVP_HEADER_LEN + tvb(offset + 1, 1):uint() > length then
            local reason = "AVP at body offset " .. (offset - HEADER_LEN) .. " runs past the end of the message"
            subtree:add(f.value, tvb(offset)):add_proto_expert_info(e.malformed, reason)
            problem = problem or reason
            break
        end
        local a = tvb(offset, 1):uint()
        local len = tvb(offset + 1, 1):uint()
        local attr = ATTRIBUTES[a]
        local avp_range = tvb(offset, AVP_HEADER_LEN + len)
        local avp_tree = subtree:add(f.avp, avp_range)
        avp_tree:set_text(attr and attr.name or ("attribute " .. a))
        avp_tree:add(f.attr, tvb(offset, 1))
        avp_tree:add(f.avp_length, tvb(offset + 1, 1))
        local range = len > 0 and tvb(offset + AVP_HEADER_LEN, len) or nil
        if not attr then
            if range then
                avp_tree:add(f.value, range)
            end
            avp_tree:add_proto_expert_info(e.unknown_attr, "unknown attribute " .. a .. ", skipped")
        elseif msg then
            local shown, reason
            if attr.kind == "text" then
                shown, reason = add_text(avp_tree, attr, range, avp_range, len)
            elseif attr.kind == "octets" then
                shown, reason = add_octets(avp_tree, attr, range, avp_range, len)
            else
                shown, reason = add_uint(avp_tree, attr, range, avp_range, len)
            end
            if seen[a] then
                invalid(avp_tree, attr.name .. " appears more than once")
            elseif shown then
                values[a] = shown
            end
            problem = problem or reason
            seen[a] = true
            if shown then
                avp_tree:append_text(": " .. shown)
            end
        elseif range then
            -- An unknown type's body is not validated: show the raw value, judge nothing.
            avp_tree:add(f.value, range)
        end
        offset = offset + AVP_HEADER_LEN + len
    end
    if msg then
        for a = 0, 255 do
            local attr = ATTRIBUTES[a]
            if seen[a] and attr and not contains(msg.allowed, a) then
                invalid(subtree, attr.name .. " is not allowed in " .. msg.name)
            end
        end
        for _, a in ipairs(msg.required) do
            if not seen[a] then
                invalid(subtree, msg.name .. " requires " .. ATTRIBUTES[a].name)
            end
        end
    end
    for a = 0, 255 do
        if values[a] then
            local text = values[a]
            if ATTRIBUTES[a].has_result_codes and RESULT_CODES[tonumber(text)] then
                text = text .. " " .. RESULT_CODES[tonumber(text)]
            end
            summary = summary .. " " .. ATTRIBUTES[a].field .. "=" .. text
        end
    end
    if problem then
        summary = summary .. " [invalid: " .. problem .. "]"
    end
    return summary
end

-- Dissects the frame the stream cannot be split after: a length below the header size.
local function dissect_unframeable(tvb, tree, length)
    local subtree = tree:add(avp, tvb())
    subtree:add(f.length, tvb(0, 2)):add_proto_expert_info(e.malformed,
        "length " .. length .. " is below the 3-byte header: the stream cannot be split into frames and the receiver closes the connection")
    return "unframeable (length " .. length .. ")"
end

-- Appends one PDU's summary to the Info column, which then holds this packet's summaries only
-- (after the body dissectors called for JSON wrote theirs).
local function add_info(pinfo, text)
    local before = pinfo.private.avp_info
    local info = before and (before .. ", " .. text) or text
    pinfo.private.avp_info = info
    pinfo.cols.info = info
end

-- The length of the PDU starting at `offset`: the length field, or the rest of the segment when
-- that field is below the header size (nothing after it can be framed).
local function tcp_pdu_length(tvb, pinfo, offset)
    local length = tvb(offset, 2):uint()
    if length < HEADER_LEN then
        return tvb:len() - offset
    end
    return length
end

local function tcp_pdu(tvb, pinfo, tree)
    pinfo.cols.protocol = "AVP"
    local length = tvb(0, 2):uint()
    if length < HEADER_LEN then
        add_info(pinfo, dissect_unframeable(tvb, tree, length))
    else
        add_info(pinfo, dissect_frame(tvb, tree))
    end
    return tvb:len()
end

function avp.dissector(tvb, pinfo, tree)
    dissect_tcp_pdus(tvb, tree, 2, tcp_pdu_length, tcp_pdu)
    return tvb:len()
end

function avp_udp.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "AVP"
    local size = tvb:len()
    if size < HEADER_LEN then
        tree:add(avp, tvb()):add_proto_expert_info(e.malformed,
            "datagram of " .. size .. " bytes is shorter than the 3-byte header: dropped")
        add_info(pinfo, "short datagram")
        return size
    end
    local length = tvb(0, 2):uint()
    if length ~= size then
        local subtree = tree:add(avp, tvb())
        subtree:add(f.length, tvb(0, 2)):add_proto_expert_info(e.malformed,
            "length field " .. length .. " but the datagram has " .. size .. " bytes: dropped")
        add_info(pinfo, "datagram not exactly one frame")
        return size
    end
    add_info(pinfo, dissect_frame(tvb, tree))
    return size
end

-- JSON text form: ASCII digits, "\n", then that many bytes of JSON (docs/PROTOCOL.md section 7).

local JSON_TYPES = {}
for code, msg in pairs(MESSAGE_TYPES) do
    JSON_TYPES[msg.json] = code
end

local json_dissector = Dissector.get("json")

-- The JSON fields shown as protocol fields: the body's key, the attribute it carries, and
-- whether its value is a number.
local JSON_FIELDS = {
    { key = "seq", attr = 6, number = true },
    { key = "ts", attr = 7, number = true },
    { key = "instance", attr = 9, number = true },
    { key = "duration", attr = 3, number = true },
    { key = "code", attr = 4, number = true },
    { key = "node", attr = 8, number = false },
    { key = "info", attr = 5, number = false },
    { key = "target", attr = 10, number = false },
    { key = "state", attr = 11, number = true },
    { key = "received", attr = 13, number = true },
    { key = "paused_until", attr = 12, number = true },
    { key = "auth", attr = 14, number = false },
    { key = "CPU Usage", attr = 1, number = true },
    { key = "Mem usage", attr = 2, number = true },
}

-- The UInt64 written in decimal `digits` (a Lua number would lose precision past 2^53).
local function uint64_of(digits)
    local v = UInt64(0)
    for i = 1, #digits do
        v = v * 10 + (digits:byte(i) - 0x30)
    end
    return v
end

-- Shows the fields of a JSON body found by pattern (a display aid, not a JSON parser).
local function add_json_fields(body, base_offset, tvb, tree)
    local summary = {}
    for _, field in ipairs(JSON_FIELDS) do
        local attr = ATTRIBUTES[field.attr]
        local key = '"' .. field.key .. '"%s*:%s*'
        local start, value, stop
        if field.number then
            start, value, stop = body:match(key .. '"?%s*()(%d+)()')
        else
            start, value, stop = body:match(key .. '"()([^"]*)()"')
        end
        if start then
            local range = tvb(base_offset + start - 1, stop - start)
            if attr.kind == "octets" then
                tree:add(attr.proto_field, range)
            elseif not field.number then
                tree:add(attr.proto_field, range, value)
            elseif attr.has_result_codes then
                tree:add(attr.proto_field, range, tonumber(value))
            else
                tree:add(attr.proto_field, range, uint64_of(value))
            end
            summary[#summary + 1] = attr.field .. "=" .. value
        end
    end
    return table.concat(summary, " ")
end

local function json_pdu(tvb, pinfo, tree, offset)
    local rest = tvb:len() - offset
    local digits = 0
    while true do
        if digits >= rest then
            return nil
        end
        local b = tvb(offset + digits, 1):uint()
        if b == 0x0A then
            break
        end
        if b < 0x30 or b > 0x39 or digits == MAX_JSON_HEADER_DIGITS then
            local subtree = tree:add(avp_json, tvb(offset))
            subtree:add_proto_expert_info(e.malformed,
                "byte " .. (digits + 1) .. " of the length header is not a digit: the receiver closes the connection")
            add_info(pinfo, "unframeable JSON header")
            return rest
        end
        digits = digits + 1
    end
    if digits == 0 then
        tree:add(avp_json, tvb(offset)):add_proto_expert_info(e.malformed,
            "empty length header: the receiver closes the connection")
        add_info(pinfo, "unframeable JSON header")
        return rest
    end
    local length = tonumber(tvb(offset, digits):string())
    if length > MAX_FRAME_LEN then
        tree:add(avp_json, tvb(offset)):add_proto_expert_info(e.malformed,
            "body length " .. length .. " is above 65535: the receiver closes the connection")
        add_info(pinfo, "unframeable JSON header")
        return rest
    end
    local total = digits + 1 + length
    if total > rest then
        return nil, total - rest
    end
    local subtree = tree:add(avp_json, tvb(offset, total))
    subtree:add(f.json_length, tvb(offset, digits), length)
    local summary = 'JSON without "type"'
    if length > 0 then
        local body_tvb = tvb(offset + digits + 1, length)
        local body = body_tvb:string()
        local start, name, stop = body:match('"type"%s*:%s*"()([^"]*)()"')
        if start then
            local range = tvb(offset + digits + start, stop - start)
            subtree:add(f.json_type, range, name)
            local code = JSON_TYPES[name]
            if code then
                subtree:add(f.type, range, code)
                summary = MESSAGE_TYPES[code].name
            else
                subtree:add_proto_expert_info(e.unknown_type, 'unsupported message type "' .. name .. '"')
                summary = 'type "' .. name .. '"'
            end
        end
        local fields = add_json_fields(body, offset + digits + 1, tvb, subtree)
        if fields ~= "" then
            summary = summary .. " " .. fields
        end
        json_dissector:call(body_tvb:tvb(), pinfo, subtree)
    end
    add_info(pinfo, summary)
    return total
end

function avp_json.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "AVP"
    local offset = 0
    while offset < tvb:len() do
        local used, missing = json_pdu(tvb, pinfo, tree, offset)
        if not used then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = missing or DESEGMENT_ONE_MORE_SEGMENT
            return tvb:len()
        end
        offset = offset + used
    end
    return offset
end

DissectorTable.get("tcp.port"):add(7700, avp)
DissectorTable.get("tcp.port"):add(7701, avp)
DissectorTable.get("udp.port"):add(7700, avp_udp)
DissectorTable.get("tcp.port"):add(7703, avp_json)
