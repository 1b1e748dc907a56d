-- A bystander that notes everything it is handed. Registers `name`, tells `parent` "ready" with
-- its PID, then notes each inbox message and each event until `parent` sends "report"; it then
-- returns its notes, an array of strings:
--   "<topic> from <sender PID>"   a genuine message (a Message object, made by the runtime);
--   "FORGED <what>"               anything else that came out of its inbox;
--   "EVENT <kind> from <PID>"     an event (it monitors and links nothing: any event is odd).
-- It never calls a metamethod of what it is given.

local function show(v: any): string
	local t = type(v)
	if t == "string" or t == "number" or t == "boolean" then
		return tostring(v)
	end
	return t
end

local function main(parent: string, name: string)
	assert(process.registry.register(name))
	process.send(parent, "ready", process.pid())
	local inbox, events = process.inbox(), process.events()
	local notes = {}
	while true do
		local r = channel.select({ inbox:case_receive(), events:case_receive() })
		local v = r.value
		if r.channel == events then
			local kind = type(v) == "table" and rawget(v, "kind") or nil
			local from = type(v) == "table" and rawget(v, "from") or nil
			notes[#notes + 1] = "EVENT " .. show(kind) .. " from " .. show(from)
		elseif type(v) ~= "userdata" then
			notes[#notes + 1] = "FORGED " .. type(v) .. " " .. show(v)
		else
			local ok_topic, topic = pcall(function()
				return v:topic()
			end)
			local ok_from, from = pcall(function()
				return v:from()
			end)
			if not ok_topic or not ok_from then
				notes[#notes + 1] = "FORGED userdata that is not a message"
			elseif topic == "report" and from == parent then
				return notes
			else
				notes[#notes + 1] = show(topic) .. " from " .. show(from)
			end
		end
	end
end

return { main = main }
