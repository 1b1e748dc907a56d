local function main(to: string)
	process.send(to, "data", { x = 1 })
	process.send(to, "other", "o")
end
return { main = main }
