-- WebSocket (RFC 6455) for `protocol: socket` servers, in Lua: the opening handshake, frames both ways,
-- fragmented messages, ping/pong and close. Every call works on the connection whose hook is running
-- (mix.socket.tcp()); the accepted path is the server's `path` option unless input is given one.
--
--   local websocket = require("protocols.websocket")
--   function protocol_input(buf) return websocket.input(buf, on_handshake) end   -- or (buf, "/chat", on_handshake)
--   function protocol_decode(str) return websocket.decode(str) end
--   function protocol_encode(str) return websocket.encode(str) end
--   function on_message(msg) websocket.send_text("you sent: " .. msg["data"]) end
--
-- on_handshake(client_id, headers, server) runs once the handshake is answered, like the hook of the same
-- name on `protocol: websocket` servers. decode gives each message whole, as
-- {type = "text" | "binary", data = <bytes>, finish = true}; ping, pong and close frames are answered
-- here and give nil. A request that is no WebSocket handshake gets an HTTP error and is closed; a frame
-- that breaks the protocol gets a close frame (1002) and is closed.

local bit = require("bit")
-- The engine's byte helpers: unmasking byte by byte in Lua would cost more than a hook's budget.
local xor = require("connmix.bytes").xor

local band = bit.band
local byte, char, sub, find, match, lower, upper, gsub, gmatch =
    string.byte, string.char, string.sub, string.find, string.match, string.lower, string.upper, string.gsub,
    string.gmatch
local concat = table.concat
local floor = math.floor

local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
-- The request head (request line and headers) must fit in this many bytes.
local MAX_HEAD = 8192
-- The context value that marks a connection whose handshake is done.
local HANDSHAKE_DONE = "__handshake"

local CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
local TYPES = { [TEXT] = "text", [BINARY] = "binary" }
local KNOWN = { [CONTINUATION] = true, [TEXT] = true, [BINARY] = true, [CLOSE] = true, [PING] = true, [PONG] = true }

local PROTOCOL_ERROR, TOO_BIG = 1002, 1009

local websocket = {}

-- One unmasked frame with FIN set (servers never mask).
local function frame(opcode, payload)
    local n = #payload
    local head
    if n < 126 then
        head = char(0x80 + opcode, n)
    elseif n < 65536 then
        head = char(0x80 + opcode, 126, floor(n / 256), n % 256)
    else
        head = char(0x80 + opcode, 127, 0, 0, 0, 0,
            floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
    end
    return head .. payload
end

-- Sends a close frame (code, reason) and returns -1, which makes the engine close the connection once
-- the frame is written.
local function fail(conn, code, why)
    mix.log(mix.DEBUG, "websocket: closing " .. conn:client_id() .. ": " .. why)
    conn:send(frame(CLOSE, char(floor(code / 256), code % 256) .. why))
    return -1
end

-- Answers a request that is no acceptable handshake with an HTTP error, and returns -1 (close).
local function refuse(conn, status, why, extra)
    mix.log(mix.DEBUG, "websocket: handshake refused for " .. conn:client_id() .. ": " .. why)
    conn:send("HTTP/1.1 " .. status .. "\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: "
        .. (#why + 1) .. "\r\n" .. (extra or "") .. "\r\n" .. why .. "\n")
    return -1
end

-- Header names as the built-in websocket server hands them to on_handshake: "sec-websocket-key" and
-- "SEC-WEBSOCKET-KEY" both become "Sec-Websocket-Key".
local function canonical(name)
    return (gsub(gsub(lower(name), "^%l", upper), "%-%l", upper))
end

-- Whether the comma-separated header value holds `token` (case-insensitive).
local function has_token(value, token)
    for item in gmatch(lower(value or ""), "[^,]+") do
        if match(item, "^%s*(.-)%s*$") == token then
            return true
        end
    end
    return false
end

-- The same rule as `path` on websocket servers: a path ending in "/" is a prefix, any other is exact;
-- the query string does not count.
local function path_matches(path, target)
    local pathname = match(target, "^[^?#]*")
    if sub(path, -1) == "/" then
        return sub(pathname, 1, #path) == path
    end
    return pathname == path
end

-- The opening handshake: waits for the whole request head, checks it, answers 101 and calls
-- on_handshake. Returns the head's length, so the engine takes it as a packet (decode ignores it) and
-- frames sent right behind it are kept.
local function handshake(buf, conn, path, on_handshake)
    local input = buf:tostring()
    local head_end = find(input, "\r\n\r\n", 1, true)
    if (head_end and head_end + 3 or #input) > MAX_HEAD then
        return refuse(conn, "431 Request Header Fields Too Large", "request head over " .. MAX_HEAD .. " bytes")
    end
    if not head_end then
        return 0
    end
    local head = sub(input, 1, head_end + 1)
    local method, target, version = match(head, "^(%S+) (%S+) HTTP/(%d+%.%d+)\r\n")
    if not method then
        return refuse(conn, "400 Bad Request", "malformed request line")
    end
    local headers = {}
    for line in gmatch(sub(head, find(head, "\r\n", 1, true) + 2), "(.-)\r\n") do
        local name, value = match(line, "^([^:%s]+):%s*(.-)%s*$")
        if not name then
            return refuse(conn, "400 Bad Request", "malformed header line")
        end
        name = canonical(name)
        headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    end
    if method ~= "GET" then
        return refuse(conn, "405 Method Not Allowed", "a WebSocket handshake is a GET request")
    end
    if tonumber(version) < 1.1 then
        return refuse(conn, "400 Bad Request", "a WebSocket handshake needs HTTP/1.1")
    end
    if not path_matches(path, target) then
        return refuse(conn, "404 Not Found", "no WebSocket at " .. target)
    end
    if not has_token(headers["Upgrade"], "websocket") or not has_token(headers["Connection"], "upgrade") then
        return refuse(conn, "400 Bad Request", "not a WebSocket upgrade request")
    end
    local key = headers["Sec-Websocket-Key"]
    if not key or #key ~= 24 or not match(key, "^[%w+/]+=*$") then
        return refuse(conn, "400 Bad Request", "missing or malformed Sec-WebSocket-Key")
    end
    if headers["Sec-Websocket-Version"] ~= "13" then
        return refuse(conn, "426 Upgrade Required", "unsupported WebSocket version", "Sec-WebSocket-Version: 13\r\n")
    end
    local answer = {
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Server: connmix",
        "Sec-WebSocket-Accept: " .. mix.base64_encode(mix.sha1_bin(key .. GUID)),
    }
    -- Browsers and ws fail a handshake that offered subprotocols and got none back: take the first.
    local subprotocol = match(headers["Sec-Websocket-Protocol"] or "", "^%s*([^,%s]+)")
    if subprotocol then
        answer[#answer + 1] = "Sec-WebSocket-Protocol: " .. subprotocol
    end
    conn:send(concat(answer, "\r\n") .. "\r\n\r\n")
    conn:set_context_value(HANDSHAKE_DONE, true)
    if on_handshake then
        on_handshake(conn:client_id(), headers, {
            Method = method,
            RequestUri = target,
            ServerProtocol = "HTTP/" .. version,
            Host = headers["Host"] or "",
            RemoteAddr = conn:remote_addr(),
        })
    end
    return head_end + 3
end

-- Reads the header of the frame at the buffer's cursor. Returns fin, opcode and the bytes the whole
-- frame takes; nil when the header is not all there yet; nil, close code, reason when it is invalid.
local function frame_header(buf)
    local start = buf:position()
    local head = buf:read(2)
    if not head then
        return nil
    end
    local b1, b2 = byte(head, 1, 2)
    local fin, opcode = band(b1, 0x80) ~= 0, band(b1, 0x0f)
    if band(b1, 0x70) ~= 0 then
        return nil, PROTOCOL_ERROR, "reserved bits set (no extension was agreed)"
    end
    if not KNOWN[opcode] then
        return nil, PROTOCOL_ERROR, "unknown opcode " .. opcode
    end
    local length = band(b2, 0x7f)
    if length == 126 then
        local extended = buf:read(2)
        if not extended then
            return nil
        end
        local high, low = byte(extended, 1, 2)
        length = high * 256 + low
    elseif length == 127 then
        local extended = buf:read(8)
        if not extended then
            return nil
        end
        local b = { byte(extended, 1, 8) }
        if b[1] + b[2] + b[3] + b[4] > 0 or b[5] >= 128 then
            return nil, TOO_BIG, "frame too large"
        end
        -- Floats on purpose: the engine's integers are 32-bit and would wrap past 2^31.
        length = ((b[5] * 256.0 + b[6]) * 256.0 + b[7]) * 256.0 + b[8]
    end
    if opcode >= CLOSE and (not fin or length > 125) then
        return nil, PROTOCOL_ERROR, "control frames must be whole and at most 125 bytes"
    end
    local masked = band(b2, 0x80) ~= 0
    return fin, opcode, buf:position() - start + (masked and 4 or 0) + length
end

-- The length of the next packet once the handshake is done: one frame, or a fragmented message from
-- its first frame to its last (with any control frames sent between them), so that decode needs no
-- state across packets. 0 while it is incomplete, -1 (after a close frame) if it breaks the protocol.
local function packet_length(buf, conn)
    local fin, opcode, size = frame_header(buf)
    if fin == nil then
        return opcode and fail(conn, opcode, size) or 0
    end
    if buf:length() < size then
        return 0
    end
    if opcode == CONTINUATION then
        return fail(conn, PROTOCOL_ERROR, "continuation frame outside a fragmented message")
    end
    if fin or opcode >= CLOSE then
        return size
    end
    local total = size
    while true do
        buf:read(total - buf:position())
        fin, opcode, size = frame_header(buf)
        if fin == nil then
            return opcode and fail(conn, opcode, size) or 0
        end
        if buf:length() < total + size then
            return 0
        end
        if opcode == TEXT or opcode == BINARY then
            return fail(conn, PROTOCOL_ERROR, "new message inside a fragmented one")
        end
        total = total + size
        if fin and opcode == CONTINUATION then
            return total
        end
    end
end

-- Answers a control frame; false once the connection is closing.
local function control(conn, opcode, payload)
    if opcode == PING then
        conn:send(frame(PONG, payload))
    elseif opcode == CLOSE then
        -- Echo the peer's status code, as RFC 6455 section 5.5.1 asks, then close.
        conn:send(frame(CLOSE, #payload >= 2 and sub(payload, 1, 2) or ""))
        conn:close()
        return false
    end
    return true
end

-- protocol_input: the handshake first, then frames. `uri` (optional) is the accepted path, else the
-- server's `path` option, else any path; `on_handshake` (optional) is called when a handshake succeeds.
function websocket.input(buf, uri, on_handshake)
    if type(uri) ~= "string" then
        uri, on_handshake = nil, uri
    end
    local conn = assert(mix.socket.tcp())
    if conn:context_value(HANDSHAKE_DONE) then
        return packet_length(buf, conn)
    end
    return handshake(buf, conn, uri or mix.server.option("path") or "/", on_handshake)
end

-- protocol_decode: the packet input delimited, as {type, data, finish}; nil for the handshake request
-- and for control frames (answered here).
function websocket.decode(str)
    -- The handshake request: "G" can start no frame input accepts (reserved bits and opcode).
    if sub(str, 1, 4) == "GET " then
        return nil
    end
    local conn = assert(mix.socket.tcp())
    local parts, message_type = {}, nil
    local at, n = 1, #str
    while at < n do
        local b1, b2 = byte(str, at, at + 1)
        local opcode = band(b1, 0x0f)
        local length = band(b2, 0x7f)
        local p = at + 2
        if length == 126 then
            local high, low = byte(str, p, p + 1)
            length = high * 256 + low
            p = p + 2
        elseif length == 127 then
            local _, _, _, _, b5, b6, b7, b8 = byte(str, p, p + 7)
            length = ((b5 * 256.0 + b6) * 256.0 + b7) * 256.0 + b8
            p = p + 8
        end
        local mask
        if band(b2, 0x80) ~= 0 then
            mask = sub(str, p, p + 3)
            p = p + 4
        end
        local payload = sub(str, p, p + length - 1)
        if mask and length > 0 then
            payload = xor(payload, mask)
        end
        at = p + length
        if opcode >= CLOSE then
            if not control(conn, opcode, payload) then
                return nil
            end
        else
            if opcode ~= CONTINUATION then
                message_type = TYPES[opcode]
            end
            parts[#parts + 1] = payload
        end
    end
    if not message_type then
        return nil
    end
    return { type = message_type, data = concat(parts), finish = true }
end

-- protocol_encode: one frame, text unless `message_type` is "binary".
function websocket.encode(str, message_type)
    return frame(message_type == "binary" and BINARY or TEXT, str)
end

local function send(opcode, data)
    local conn, err = mix.socket.tcp()
    if not conn then
        return err
    end
    if type(data) == "number" then
        data = tostring(data)
    elseif type(data) ~= "string" then
        error("websocket: data must be a string, got " .. type(data), 3)
    end
    return conn:send(frame(opcode, data))
end

-- Sends a text message to the current connection; returns err (nil when sent).
function websocket.send_text(data)
    return send(TEXT, data)
end

-- Sends a binary message to the current connection; returns err (nil when sent).
function websocket.send_binary(data)
    return send(BINARY, data)
end

return websocket
