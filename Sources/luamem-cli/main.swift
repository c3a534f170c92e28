import LuamemCommands

Luamem.main()
