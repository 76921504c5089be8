require("utils.prettyprint")
local mix_log = mix.log
local mix_DEBUG = mix.DEBUG
local websocket = require("protocols.websocket")

function on_connect(client_id)
    mix_log(mix_DEBUG, "on_connect client_id: " .. client_id)
end

function on_handshake(client_id, headers, server)
    --mix_log(mix_DEBUG, "on_handshake client_id: " .. client_id)
end

function on_close(client_id, err)
    --print(err)
end

--buf is an object, a copy
--The return value must be int, return the length of the package termination 0=continue to wait,-1=disconnect
function protocol_input(buf)
    return websocket.input(buf, on_handshake)
end

--The return value supports any type, when the return data is nil, on_message will not be triggered
function protocol_decode(str)
    return websocket.decode(str)
end

--The return value must be string, when the return data is not string, or empty, an error will be returned when sending the message
function protocol_encode(str)
    return websocket.encode(str)
end

--msg is of any type, the value is equal to the return value of protocol_decode
function on_message(msg)
    --print(msg)
    websocket.send_text('Hello,World!')
end
