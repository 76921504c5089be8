require("utils.prettyprint")
local mix_log = mix.log
local mix_DEBUG = mix.DEBUG
local websocket = require("protocols.websocket")
local mix_conn = mix.socket.tcp

function on_connect(client_id)
    mix_log(mix_DEBUG, "on_connect client_id: " .. client_id)
end

function on_handshake(headers)
    --print(headers)
end

function on_close(client_id, err)
    --print(err)
end

--buf为一个对象，是一个副本
--返回值必须为int, 返回包截止的长度 0=继续等待,-1=断开连接
function protocol_input(buf)
    return websocket.input(buf, on_handshake)
end

--返回值支持任意类型, 当返回数据为nil时，on_message将不会被触发
function protocol_decode(str)
    return websocket.decode(str)
end

--返回值必须为string, 当返回数据不是string, 或者为空, 发送消息时将返回失败错误
function protocol_encode(str)
    return websocket.encode(str)
end

--msg为任意类型, 值等于protocol_decode返回值
function on_message(msg)
    --print(msg)
    websocket.send_text('Hello,World!')
end
