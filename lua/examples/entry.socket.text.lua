-- A line-based echo server on raw TCP (`protocol: socket`), framed by protocols/text.lua. To run it,
-- copy it to lua/entry.socket.lua beside lua/protocols/ and point a `protocol: socket` server at it,
-- then `nc 127.0.0.1 <port>`:
--   hello <client_id>           sent on connect
--   > hi                        echo: hi
--   > subscribe room:1          subscribed room:1 (what is published to room:1 then arrives as lines)
--   > quit                      the server closes the connection

local text = require("protocols.text")

function on_connect(client_id)
    mix.socket.tcp():send(text.encode("hello " .. client_id))
end

function on_close(client_id, err)
    if err then
        mix.log(mix.DEBUG, "client " .. client_id .. " closed: " .. err)
    end
end

function protocol_input(buf)
    return text.input(buf)
end

function protocol_decode(str)
    return text.decode(str)
end

-- Applied to what backends publish or send to the connection (conn:send writes raw bytes).
function protocol_encode(str)
    return text.encode(str)
end

function on_message(line)
    local conn = mix.socket.tcp()
    local args = mix.str_split(line, " ")
    if args[1] == "subscribe" and args[2] then
        local err = conn:subscribe(args[2])
        conn:send(text.encode(err or ("subscribed " .. args[2])))
    elseif line == "quit" then
        conn:close()
    else
        conn:send(text.encode("echo: " .. line))
    end
end
