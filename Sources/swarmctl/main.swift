SwarmCtl.main()
